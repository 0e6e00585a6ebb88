package workorder

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestTextFieldsBounded: every free-text field has a limit and refuses
// control characters other than newline and tab.
func TestTextFieldsBounded(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	for _, c := range []struct {
		o    NewOrder
		want string
	}{
		{NewOrder{Project: "garden", Title: "x", Skill: strings.Repeat("电", 500_000)}, "skill: 500000 characters, longer than the limit of 64"},
		{NewOrder{Project: "garden", Title: "x", Skill: "elevator\x00"}, "skill: control character U+0000"},
		{NewOrder{Project: "garden", Title: "漏水\x07"}, "title: control character U+0007"},
		{NewOrder{Project: "garden", Title: strings.Repeat("t", 201)}, "title: 201 characters"},
		{NewOrder{Project: "garden", Title: "x", Description: "a\x1b[2J"}, "description: control character U+001B"},
		{NewOrder{Project: "garden", Title: "x", Description: strings.Repeat("d", 4001)}, "description: 4001 characters"},
	} {
		if _, err := r.d.Create(ctx, pmGarden, c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create: %v, want %q", err, c.want)
		}
	}
	w, err := r.d.Create(ctx, pmGarden, NewOrder{Project: "garden", Title: "漏水", Description: "第一行\n第二行\t完", Skill: "plumbing"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []TransitionRequest{
		{To: StateAssigned, Assignee: "tech-garden-1", Note: "bell\a"},
		{To: StateAssigned, Assignee: "tech-garden-1", Note: strings.Repeat("n", 4001)},
		{To: StateAssigned, Assignee: "tech-garden-1", Photo: "https://x/\r\n"},
	} {
		if _, err := r.d.Transition(ctx, pmGarden, w.ID, tr); !errors.Is(err, ErrInvalid) {
			t.Errorf("transition with %q / %q: %v, want invalid", tr.Note, tr.Photo, err)
		}
	}
}

// TestMessagesEscapeUserText: a title or note cannot forge a field or a
// link in the markdown that group robots show.
func TestMessagesEscapeUserText(t *testing.T) {
	r := newRig(t, nil, nil)
	ctx := context.Background()
	w, err := r.d.Create(ctx, pmGarden, NewOrder{Project: "garden", Title: "漏水 **紧急** [点我](http://evil.example/x) <font color=\"red\">", Priority: 2})
	if err != nil {
		t.Fatal(err)
	}
	forged := "done\n> 处理人 assignee: 王建国 (hq-admin)\n[领奖](http://evil.example/y)"
	if _, err := r.d.Transition(ctx, pmGarden, w.ID, TransitionRequest{To: StateCancelled, Note: forged}); err != nil {
		t.Fatal(err)
	}
	r.notes.mu.Lock()
	defer r.notes.mu.Unlock()
	if len(r.notes.msgs) == 0 {
		t.Fatal("no messages")
	}
	for _, m := range r.notes.msgs {
		if strings.Count(m.Text, "\n> 处理人 assignee:") != 1 || strings.Contains(m.Text, "王建国 (hq-admin)\n") {
			t.Errorf("%s: a note forged a field:\n%s", m.Event, m.Text)
		}
		for _, raw := range []string{"[点我](", "[领奖](", "**紧急**", "<font"} {
			if strings.Contains(strings.ReplaceAll(m.Text, `\<`, ""), raw) || strings.Contains(m.Title, "\n") {
				t.Errorf("%s: %q reaches the markdown unescaped:\n%s", m.Event, raw, m.Text)
			}
		}
		if !strings.Contains(m.Text, `\[点我\]\(http://evil.example/x\)`) {
			t.Errorf("%s: the title's text is not kept (escaped):\n%s", m.Event, m.Text)
		}
	}
}
