package workorder

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/plantroom/plantroom/cloud/photo"
)

// SourceResident marks an order opened from a resident's repair request
// (package resident): no staff member opened it, the project's public
// request link did.
const SourceResident = "resident"

// Resident is the "who" of the opening of a resident's order.
const Resident = "resident"

// CreateForResident opens a work order for a resident's repair request in
// project and dispatches it like any other (the on-duty technician with
// the skill, else the manager). There is no staff viewer: the caller has
// checked the project's public request link, and r is checked here like a
// manual order (text limits, category, priority).
func (d *Desk) CreateForResident(ctx context.Context, project string, r NewOrder) (WorkOrder, error) {
	co, p, ok := d.cfg.Org.FindProject(project)
	if !ok {
		return WorkOrder{}, fmt.Errorf("cannot create work order: project %q: %w", project, ErrNotFound)
	}
	return d.create(ctx, co, p, r, SourceResident, Resident, "resident's repair request")
}

// Lookup returns an order without its history, whoever asks: for the
// resident's tracking link, whose unguessable token is the access. Staff
// use Get, which checks scope. An order the desk no longer holds is read
// from the log's history (within lookupTimeout; a failed read is logged
// and answered as not found).
func (d *Desk) Lookup(id string) (WorkOrder, bool) {
	w := d.lookup(id)
	if w == nil {
		return WorkOrder{}, false
	}
	w.History = nil
	return *w, true
}

// OpeningPhotos returns the photos an order's opening carried (a
// resident's own, for the tracking link; whoever asks, like Lookup).
func (d *Desk) OpeningPhotos(id string) []photo.Photo {
	w := d.lookup(id)
	if w == nil || len(w.History) == 0 || w.History[0].Action != ActionOpen {
		return nil
	}
	return slices.Clone(w.History[0].Photos)
}

// lookupTimeout bounds Lookup's read of an order from the log's history.
const lookupTimeout = 15 * time.Second

func (d *Desk) lookup(id string) *WorkOrder {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	w, err := d.find(ctx, id)
	if err != nil {
		d.log.Error("cannot look up work order", "order", id, "err", err)
		return nil
	}
	return w
}
