package alarm

import (
	"context"
	"fmt"
	"time"
)

// StepSource gives the stored events of the alarms of one device (or
// gateway): the ClickHouse log is one.
type StepSource interface {
	DeviceEvents(ctx context.Context, project, subject string, from, to time.Time) ([]Event, error)
}

// Steps returns every step of the alarms of a device (or gateway) raised
// from since on, oldest first: raise, repeats, updates, clear and
// acknowledgements with who and their note. They are the alarm side of the
// device's maintenance record. An event whose storage is still being
// retried appears once stored. Without a StepSource log it returns none.
func (e *Engine) Steps(ctx context.Context, v Viewer, subject string, since time.Time) ([]Event, error) {
	s := e.devices[subject]
	if s == nil {
		s = e.gateways[subject]
	}
	if s == nil || !v.SeesProject(s.company, s.project) {
		return nil, fmt.Errorf("cannot list alarm steps of %q: %w", subject, ErrNotFound)
	}
	src, ok := e.cfg.Log.(StepSource)
	if !ok {
		return nil, nil
	}
	if since.IsZero() {
		since = time.Unix(0, 0)
	}
	evs, err := src.DeviceEvents(ctx, s.project, subject, since, e.cfg.Now().Add(24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("cannot list alarm steps of %q: %w", subject, err)
	}
	return evs, nil
}
