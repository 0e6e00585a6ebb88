package backfill

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/plantroom/plantroom/devices/sim"
)

// checkState checks a backfill's state file before anything is published:
// its directory must exist, and counters taken after the period starts are
// refused, as the history would run through counter values that the cloud
// already holds for later times.
func checkState(path string, from time.Time) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("cannot write state file %q: its directory does not exist", path)
	}
	st, err := sim.ReadState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.VirtualTime.After(from) {
		return fmt.Errorf("state file %q holds counters taken at %s, after the period's start %s: backfill from %s on, or without the state file",
			path, st.VirtualTime.Format(time.RFC3339), from.Format(time.RFC3339), st.VirtualTime.Format(time.RFC3339))
	}
	return nil
}
