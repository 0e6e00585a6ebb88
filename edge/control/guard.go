// Package control is the gateway's side of remote control (issue #16):
// the checks a command from the cloud passes before the gateway executes
// it. The gateway never trusts the cloud: it checks the command against its
// own template, refuses an expired command without executing it, and
// executes each command id at most once, also across a restart within the
// command's validity (the ids seen are kept in a small file).
//
// Not built yet: subscribing to "…/down/cmd" through the uplink's
// HandleDownlink, the Modbus write serialised with polling, the read-back
// and the result event.
package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Decision is what the gateway does with a command.
type Decision int

// Decisions of Guard.Admit.
const (
	Execute   Decision = iota // write the point, read it back, report applied or failed
	Duplicate                 // already admitted: do nothing, report nothing new
	Expired                   // report expired, do not execute
	Rejected                  // report rejected (the cause says why), do not execute
)

func (d Decision) String() string {
	return [...]string{"execute", "duplicate", "expired", "rejected"}[d]
}

// Guard admits commands. It is safe for concurrent use.
type Guard struct {
	mu        sync.Mutex
	templates map[string]*config.Template // device id → its template
	path      string                      // file of the ids seen; "" keeps them in memory only
	seen      map[string]int64            // command id → expires_at (Unix ms)
}

// NewGuard returns a guard for the gateway's devices (device id → template).
// path is the file that keeps the ids seen across restarts ("" for none);
// an existing file is read, a missing one is created on the first command.
func NewGuard(devices map[string]*config.Template, path string) (*Guard, error) {
	g := &Guard{templates: devices, path: path, seen: map[string]int64{}}
	if path == "" {
		return g, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("cannot read command ids: %w", err)
	}
	if err := json.Unmarshal(data, &g.seen); err != nil {
		return nil, fmt.Errorf("cannot read command ids from %q: %w", path, err)
	}
	return g, nil
}

// Admit decides what to do with a decoded command at now, and remembers
// its id (until it expires) unless it is a duplicate. cause names why a
// command is rejected or expired, for the result event.
func (g *Guard) Admit(c protocol.Command, now time.Time) (d Decision, cause string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	nowMS := now.UnixMilli()
	for id, exp := range g.seen {
		if exp < nowMS {
			delete(g.seen, id)
		}
	}
	if _, ok := g.seen[c.ID]; ok {
		return Duplicate, "", nil
	}
	tpl := g.templates[c.Device]
	switch {
	case c.ExpiresAt < nowMS:
		d, cause = Expired, fmt.Sprintf("expired %d ms before it arrived", nowMS-c.ExpiresAt)
	case tpl == nil:
		d, cause = Rejected, fmt.Sprintf("unknown device %q", c.Device)
	default:
		if _, err := tpl.CheckWrite(c.Point, c.Value); err != nil {
			d, cause = Rejected, err.Error()
		}
	}
	if d == Expired {
		// Nothing to remember: a redelivery is expired again.
		return d, cause, nil
	}
	g.seen[c.ID] = c.ExpiresAt
	if err := g.save(); err != nil {
		delete(g.seen, c.ID)
		return Rejected, "cannot remember the command id", err
	}
	return d, cause, nil
}

// save writes the ids seen atomically (temporary file, fsync, rename).
func (g *Guard) save() error {
	if g.path == "" {
		return nil
	}
	data, err := json.Marshal(g.seen)
	if err != nil {
		return fmt.Errorf("cannot encode command ids: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(g.path), filepath.Base(g.path)+".*")
	if err != nil {
		return fmt.Errorf("cannot save command ids: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), g.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot save command ids to %q: %w", g.path, err)
	}
	return nil
}
