package workorder

import (
	"context"
	"fmt"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
)

// ActionArrive records the assignee's arrival on site (scanning the
// device's QR code): no state change; it sets ArrivedAt, the real response
// time, and counts as being on site for the SLA.
const ActionArrive = "arrive"

// Arrive records that the viewer, the order's assignee, is on site. It
// records once per assignment: arrived is false when the arrival was
// already recorded (the order is returned as it is). Only the assignee of
// an order still being worked on arrives (access.Work).
func (d *Desk) Arrive(ctx context.Context, v alarm.Viewer, id string) (w WorkOrder, arrived bool, err error) {
	if err := d.hold(ctx, id); err != nil {
		return WorkOrder{}, false, fmt.Errorf("cannot record arrival at work order %q: %w", id, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.orders[id]
	if o == nil || !v.Sees(o.Resource()) {
		return WorkOrder{}, false, fmt.Errorf("cannot record arrival at work order %q: %w", id, ErrNotFound)
	}
	if !v.May(access.Work, o.Resource()) {
		return WorkOrder{}, false, fmt.Errorf("cannot record arrival at work order %q: %s %q is not its assignee: %w", id, v.Role, v.Staff, ErrForbidden)
	}
	switch o.State {
	case StateAssigned, StateAccepted, StateInProgress:
	default:
		return WorkOrder{}, false, fmt.Errorf("cannot record arrival at work order %q: it is %s: %w", id, o.State, ErrInvalid)
	}
	if !o.ArrivedAt.IsZero() {
		return d.copyOf(o, true), false, nil
	}
	now := d.cfg.Now().UTC()
	o.ArrivedAt = now
	ev := d.record(o, Event{Action: ActionArrive, At: now, Who: v.Staff, From: o.State}, o.Assignee)
	d.commit(ctx, []Event{ev})
	return d.copyOf(o, true), true, nil
}
