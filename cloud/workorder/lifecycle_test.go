package workorder

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
)

// TestLifecycleTable drives an order into every state and tries every
// target state from there: allowed moves succeed for the right person,
// the rest answer with the allowed list.
func TestLifecycleTable(t *testing.T) {
	// path brings a fresh order (assigned to tech-garden-1 at 10:00) into state.
	path := map[string][]string{
		StateAssigned:   {},
		StateAccepted:   {StateAccepted},
		StateInProgress: {StateAccepted, StateInProgress},
		StateResolved:   {StateAccepted, StateInProgress, StateResolved},
		StateClosed:     {StateAccepted, StateInProgress, StateResolved, StateClosed},
		StateCancelled:  {StateCancelled},
	}
	actor := func(to, from string) alarm.Viewer {
		switch {
		case to == StateAccepted || to == StateResolved || to == StateInProgress && from == StateAccepted:
			return techGarden1
		}
		return pmGarden
	}
	for from, steps := range path {
		for _, to := range States {
			t.Run(from+"→"+to, func(t *testing.T) {
				r := newRig(t, nil, nil)
				a := r.raise("garden-pump-1", "pump-fault", monday10)
				w := r.orderFor(a)
				if w == nil || w.State != StateAssigned || w.Assignee != "tech-garden-1" {
					t.Fatalf("order %+v: want assigned to tech-garden-1", w)
				}
				for _, s := range steps {
					if _, err := r.move(actor(s, ""), w.ID, s); err != nil {
						// actor for in_progress from accepted is the technician
						if _, err2 := r.move(techGarden1, w.ID, s); err2 != nil {
							t.Fatalf("reaching %s: %v / %v", s, err, err2)
						}
					}
				}
				req := TransitionRequest{To: to, Note: "n", Photo: "photos/1.jpg", Assignee: "tech-garden-2"}
				got, err := r.d.Transition(t.Context(), actor(to, from), w.ID, req)
				allowed := Allowed(from)
				if !slices.Contains(allowed, to) {
					var te *TransitionError
					if !errors.As(err, &te) || !errors.Is(err, ErrTransition) || !slices.Equal(te.Allowed, allowed) || te.From != from {
						t.Fatalf("err %v: want a TransitionError from %s listing %v", err, from, allowed)
					}
					if !strings.Contains(err.Error(), `"`+to+`"`) {
						t.Errorf("error %q does not name the target", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("allowed move failed: %v", err)
				}
				last := got.History[len(got.History)-1]
				if got.State != to || last.From != from || last.To != to || last.Who != actor(to, from).Staff || last.Note != "n" || last.Photo != "photos/1.jpg" {
					t.Errorf("after move: state %s, last event %+v", got.State, last)
				}
				if to == StateAssigned && got.Assignee != "tech-garden-2" {
					t.Errorf("reassigned to %q", got.Assignee)
				}
			})
		}
	}
}

func TestWhoMayMove(t *testing.T) {
	r := newRig(t, nil, nil)
	a := r.raise("garden-pump-1", "pump-fault", monday10)
	id := r.orderFor(a).ID
	for _, c := range []struct {
		v    alarm.Viewer
		to   string
		want error
	}{
		{hqViewer, StateAccepted, ErrForbidden},
		{pmGarden, StateAccepted, ErrForbidden}, // only the assignee accepts
		{techGarden2, StateAccepted, ErrNotFound},
		{pmTower, StateCancelled, ErrNotFound},
		{techTower, StateAccepted, ErrNotFound},
		{techGarden1, StateCancelled, ErrForbidden},
		{techGarden1, "done", ErrInvalid},
	} {
		if _, err := r.move(c.v, id, c.to); !errors.Is(err, c.want) {
			t.Errorf("%s → %s: %v, want %v", c.v.Staff, c.to, err, c.want)
		}
	}
	if _, err := r.d.Transition(t.Context(), pmGarden, id, TransitionRequest{To: StateAssigned, Assignee: "tech-tower-1"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("assign to another project's technician: %v", err)
	}
	if _, err := r.move(techGarden1, id, StateAccepted); err != nil {
		t.Fatal(err)
	}
	// Reassigned: the new technician sees it, the old one no longer does.
	if _, err := r.d.Transition(t.Context(), hqAdmin, id, TransitionRequest{To: StateAssigned, Assignee: "tech-garden-2", Note: "night shift takes it"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Get(techGarden1, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("previous assignee still sees it: %v", err)
	}
	w, err := r.d.Get(techGarden2, id)
	if err != nil || w.AcceptedAt != (time.Time{}) || w.State != StateAssigned {
		t.Errorf("new assignee: %v %+v", err, w)
	}
	if got := r.d.List(techGarden2, Filter{Assignee: "tech-garden-2"}); len(got) != 1 {
		t.Errorf("list for the new assignee: %d", len(got))
	}
}
