package workorder

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestResidentOrder: a resident's order is opened without a staff viewer,
// checked like a manual one, dispatched to the on-duty technician, and
// its text reaches the webhooks escaped.
func TestResidentOrder(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	if _, err := r.d.CreateForResident(ctx, "nowhere", NewOrder{Title: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown project: %v, want not found", err)
	}
	if _, err := r.d.CreateForResident(ctx, "garden", NewOrder{Title: "x", Category: "spaceship"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown category: %v, want invalid", err)
	}
	w, err := r.d.CreateForResident(ctx, "garden", NewOrder{Title: "报修 1单元: 灯不亮 **急** [点我](http://evil.example/x)", Category: "lighting", Skill: "lighting"})
	if err != nil {
		t.Fatal(err)
	}
	if w.Source != SourceResident || w.CreatedBy != Resident || w.State != StateAssigned || w.Assignee == "" || w.Category != "lighting" {
		t.Errorf("order = %+v, want a resident's lighting order, assigned", w)
	}
	if got, ok := r.d.Lookup(w.ID); !ok || got.State != StateAssigned || got.History != nil {
		t.Errorf("Lookup = %+v, %v", got, ok)
	}
	r.notes.mu.Lock()
	defer r.notes.mu.Unlock()
	if len(r.notes.msgs) == 0 {
		t.Fatal("no dispatch message")
	}
	for _, m := range r.notes.msgs {
		if strings.Contains(m.Text, "[点我](") || strings.Contains(m.Text, "**急**") || !strings.Contains(m.Text, `\[点我\]`) {
			t.Errorf("%s: resident text unescaped in the markdown:\n%s", m.Event, m.Text)
		}
	}
}
