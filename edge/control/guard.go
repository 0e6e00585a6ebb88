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
	mu       sync.Mutex
	template func(device string) *config.Template // nil: not this gateway's device
	path     string                               // file of the ids seen; "" keeps them in memory only
	seen     map[string]int64                     // command id → expires_at (Unix ms)
}

// NewGuard returns a guard for the gateway's devices: template gives a
// device's template, nil for a device the gateway does not have. path is the file that keeps the ids seen across restarts ("" for none);
// an existing file is read, a missing one is created on the first command.
func NewGuard(template func(device string) *config.Template, path string) (*Guard, error) {
	g := &Guard{template: template, path: path, seen: map[string]int64{}}
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

// Causes of a rejected or expired command (the result event's cause; the
// event's message says more).
const (
	CauseExpired         = "expired"
	CauseUnknownDevice   = "unknown_device"
	CauseUnknownPoint    = "unknown_point"
	CauseNotWritable     = "not_writable"
	CauseValueNotAllowed = "value_not_allowed"
	CauseNotRemembered   = "not_remembered" // the id could not be saved: not executed
)

// Admit decides what to do with a decoded command at now, and remembers
// its id (until it expires) unless it is a duplicate. cause (a
// protocol.CheckMetric name) and detail say why a command is rejected or
// expired, for the result event.
func (g *Guard) Admit(c protocol.Command, now time.Time) (d Decision, cause, detail string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	nowMS := now.UnixMilli()
	for id, exp := range g.seen {
		if exp < nowMS {
			delete(g.seen, id)
		}
	}
	if _, ok := g.seen[c.ID]; ok {
		return Duplicate, "", "", nil
	}
	tpl := g.template(c.Device)
	switch {
	case c.ExpiresAt < nowMS:
		d, cause, detail = Expired, CauseExpired, fmt.Sprintf("expired %d ms before it arrived", nowMS-c.ExpiresAt)
	case tpl == nil:
		d, cause, detail = Rejected, CauseUnknownDevice, fmt.Sprintf("device %q is not this gateway's", c.Device)
	default:
		if _, err := tpl.CheckWrite(c.Point, c.Value); err != nil {
			d, detail = Rejected, err.Error()
			switch {
			case errors.Is(err, config.ErrUnknownPoint):
				cause = CauseUnknownPoint
			case errors.Is(err, config.ErrNotWritable):
				cause = CauseNotWritable
			default:
				cause = CauseValueNotAllowed
			}
		}
	}
	if d == Expired {
		// Nothing to remember: a redelivery is expired again.
		return d, cause, detail, nil
	}
	g.seen[c.ID] = c.ExpiresAt
	if err := g.save(); err != nil {
		delete(g.seen, c.ID)
		return Rejected, CauseNotRemembered, err.Error(), err
	}
	return d, cause, detail, nil
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
