package workorder

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/config"
)

// Who may take a step of the lifecycle.
const (
	byAssignee = "assignee" // the order's assignee (tech-garden-1 here)
	byManager  = "manager"  // the project's manager or an HQ admin
)

// lifecycle is the work-order lifecycle written out by hand: from each
// state, the states an order may move to and who may move it. Every pair
// not listed is refused by the lifecycle (409 with the allowed states).
var lifecycle = map[string]map[string]string{
	StateOpen:       {StateAssigned: byManager, StateCancelled: byManager},
	StateAssigned:   {StateAssigned: byManager, StateAccepted: byAssignee, StateCancelled: byManager},
	StateAccepted:   {StateAssigned: byManager, StateInProgress: byAssignee, StateCancelled: byManager},
	StateInProgress: {StateAssigned: byManager, StateResolved: byAssignee, StateCancelled: byManager},
	StateResolved:   {StateInProgress: byManager, StateClosed: byManager},
	StateClosed:     {},
	StateCancelled:  {},
}

// TestLifecycleTable drives a fresh order into every state along a fixed
// path (each step by the one person whose step it is: a refused step
// fails the test, nobody else retries it) and tries every target state
// from there as each of five people: the assignee, another technician of
// the project, the project manager, an HQ admin and an HQ viewer. Each
// refusal must leave the order as it was; then the person the table names
// takes the step.
func TestLifecycleTable(t *testing.T) {
	type step struct {
		by alarm.Viewer
		to string
	}
	// path brings a fresh order (dispatched to tech-garden-1 at 10:00, or
	// left open when nobody can be dispatched) into state.
	path := map[string][]step{
		StateOpen:       {},
		StateAssigned:   {},
		StateAccepted:   {{techGarden1, StateAccepted}},
		StateInProgress: {{techGarden1, StateAccepted}, {techGarden1, StateInProgress}},
		StateResolved:   {{techGarden1, StateAccepted}, {techGarden1, StateInProgress}, {techGarden1, StateResolved}},
		StateClosed:     {{techGarden1, StateAccepted}, {techGarden1, StateInProgress}, {techGarden1, StateResolved}, {pmGarden, StateClosed}},
		StateCancelled:  {{pmGarden, StateCancelled}},
	}
	if len(path) != len(States) || len(lifecycle) != len(States) {
		t.Fatalf("the test covers %d/%d states, the package has %d", len(path), len(lifecycle), len(States))
	}
	people := []alarm.Viewer{techGarden1, techGarden2, pmGarden, hqAdmin, hqViewer}
	for _, from := range States {
		for _, to := range States {
			t.Run(from+"→"+to, func(t *testing.T) {
				r := newRig(t, nil, nil)
				if from == StateOpen {
					r.d.roster = newRoster(&config.Org{}) // nobody to dispatch to
				}
				a := r.raise("garden-pump-1", "pump-fault", monday10)
				r.d.roster = newRoster(&r.b.Org)
				w := r.orderFor(a)
				wantAssignee := "tech-garden-1"
				if from == StateOpen {
					wantAssignee = ""
				}
				if w == nil || w.Assignee != wantAssignee {
					t.Fatalf("order %+v: want assignee %q", w, wantAssignee)
				}
				for _, s := range path[from] {
					if _, err := r.move(s.by, w.ID, s.to); err != nil {
						t.Fatalf("reaching %s: %s → %s: %v", from, s.by.Staff, s.to, err)
					}
				}
				before, err := r.d.Get(context.Background(), hqAdmin, w.ID)
				if err != nil || before.State != from {
					t.Fatalf("order in %q (%v), want %s", before.State, err, from)
				}
				var allowed []string
				for _, s := range States {
					if _, ok := lifecycle[from][s]; ok {
						allowed = append(allowed, s)
					}
				}
				who, ok := lifecycle[from][to]
				req := TransitionRequest{To: to, Note: "n", Photo: "photos/1.jpg", Assignee: "tech-garden-2"}
				var doer *alarm.Viewer
				for _, p := range people {
					var want error
					switch {
					case p.Role == config.RoleTechnician && p.Staff != before.Assignee:
						want = ErrNotFound // not assigned to them: not visible
					case !ok:
						want = ErrTransition
					case who == byAssignee && p.Staff == before.Assignee && p.Role != config.RoleHQViewer:
						want = nil
					case who == byManager && (p.Role == config.RoleProjectManager || p.Role == config.RoleHQAdmin):
						want = nil
					default:
						want = ErrForbidden
					}
					if want == nil {
						if doer == nil {
							doer = &p
						}
						continue
					}
					_, err := r.d.Transition(t.Context(), p, w.ID, req)
					if !errors.Is(err, want) {
						t.Fatalf("%s (%s): %v, want %v", p.Staff, p.Role, err, want)
					}
					if want == ErrTransition {
						var te *TransitionError
						if !errors.As(err, &te) || !slices.Equal(te.Allowed, allowed) || te.From != from || !strings.Contains(err.Error(), `"`+to+`"`) {
							t.Fatalf("%s: %v: want a TransitionError from %s to %q listing %v", p.Staff, err, from, to, allowed)
						}
					}
					after, _ := r.d.Get(context.Background(), hqAdmin, w.ID)
					if after.State != before.State || after.N != before.N || after.Assignee != before.Assignee {
						t.Fatalf("refused move by %s changed the order: %s/%d/%s → %s/%d/%s", p.Staff,
							before.State, before.N, before.Assignee, after.State, after.N, after.Assignee)
					}
				}
				if !ok {
					if doer != nil {
						t.Fatalf("BUG: %s may take a step the lifecycle refuses", doer.Staff)
					}
					return
				}
				if doer == nil {
					t.Fatalf("nobody may move %s → %s, the table says %s", from, to, who)
				}
				got, err := r.d.Transition(t.Context(), *doer, w.ID, req)
				if err != nil {
					t.Fatalf("%s → %s by %s: %v", from, to, doer.Staff, err)
				}
				last := got.History[len(got.History)-1]
				if got.State != to || last.From != from || last.To != to || last.Who != doer.Staff || last.Note != "n" || last.Photo != "photos/1.jpg" || got.N != before.N+1 {
					t.Errorf("after move: state %s, events %d→%d, last event %+v", got.State, before.N, got.N, last)
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
	if _, err := r.d.Get(context.Background(), techGarden1, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("previous assignee still sees it: %v", err)
	}
	w, err := r.d.Get(context.Background(), techGarden2, id)
	if err != nil || w.AcceptedAt != (time.Time{}) || w.State != StateAssigned {
		t.Errorf("new assignee: %v %+v", err, w)
	}
	if got := ordersOf(t, r.d, techGarden2, Filter{Assignee: "tech-garden-2"}); len(got) != 1 {
		t.Errorf("list for the new assignee: %d", len(got))
	}
}
