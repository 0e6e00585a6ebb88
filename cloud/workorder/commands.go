package workorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/textfield"
)

// NewOrder is a manual work order: a resident's repair request entered by
// staff.
type NewOrder struct {
	Project     string `json:"project"`
	Device      string `json:"device,omitempty"`   // optional: the device concerned
	Category    string `json:"category,omitempty"` // default: the device's kind, or "other"
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Skill       string `json:"skill,omitempty"`    // technician skill wanted
	Priority    int    `json:"priority,omitempty"` // 1 … 4, default 3
	// SLA is the on-site time ("2h"); default by priority, the rules
	// file's work_orders.manual_sla (config.DefaultManualSLA).
	SLA string `json:"sla,omitempty"`
	// Photos are ids of stored photos the opening carries (a resident's
	// request; staff attach theirs to steps); at most MaxPhotos.
	Photos []string `json:"photos,omitempty"`
}

// Limits of free text in requests (package textfield holds the rule).
const (
	MaxTitle = textfield.MaxTitle
	MaxText  = textfield.MaxText
)

// Create opens a manual work order and dispatches it like an alarm's.
func (d *Desk) Create(ctx context.Context, v alarm.Viewer, r NewOrder) (WorkOrder, error) {
	co, p, ok := d.cfg.Org.FindProject(r.Project)
	if !ok || !v.SeesProject(co.ID, p.ID) {
		return WorkOrder{}, fmt.Errorf("cannot create work order: project %q: %w", r.Project, ErrNotFound)
	}
	if !v.May(access.Create, access.ProjectOf(co.ID, p.ID)) {
		return WorkOrder{}, fmt.Errorf("cannot create work order: role %s may not: %w", v.Role, ErrForbidden)
	}
	return d.create(ctx, co, p, r, SourceManual, v.Staff, "manual order")
}

// create checks a new order, opens and dispatches it. who opened it (a
// staff id, or Resident) is recorded with note.
func (d *Desk) create(ctx context.Context, co *config.Company, p *config.Project, r NewOrder, source, who, note string) (WorkOrder, error) {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	category := r.Category
	if r.Device != "" {
		dev := d.device(r.Device)
		if dev == nil || dev.Project.ID != p.ID {
			bad("device: unknown device %q in project %q", r.Device, p.ID)
		} else if category == "" {
			category = dev.Device.Kind
		}
	}
	if category == "" {
		category = config.KindOther
	}
	if !slices.Contains(config.DeviceKinds, category) {
		bad("category: unknown category %q (want one of %s)", category, strings.Join(config.DeviceKinds, ", "))
	}
	title := strings.TrimSpace(r.Title)
	if title == "" {
		bad("title: required")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"title", title, textfield.MaxTitle}, {"description", r.Description, textfield.MaxText}, {"skill", r.Skill, textfield.MaxLabel}} {
		if p := textfield.Check(f.name, f.v, f.max); p != "" {
			bad("%s", p)
		}
	}
	prio := r.Priority
	if prio == 0 {
		prio = 3
	}
	if prio < 1 || prio > 4 {
		bad("priority: must be 1 to 4, got %d", r.Priority)
	}
	var sla time.Duration
	if r.SLA != "" {
		var err error
		if sla, err = time.ParseDuration(r.SLA); err != nil || sla <= 0 {
			bad("sla: invalid duration %q (want e.g. \"4h\")", r.SLA)
		}
	}
	if len(probs) > 0 {
		return WorkOrder{}, fmt.Errorf("cannot create work order: %s: %w", strings.Join(probs, "; "), ErrInvalid)
	}
	photos, err := d.photosOf(ctx, "(new)", r.Photos)
	if err != nil {
		return WorkOrder{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now().UTC()
	due := now.Add(sla)
	if sla == 0 {
		def, workingDay := d.cfg.Rules.WorkOrders.ManualOrderSLA(prio)
		due = slaDue(now, def, workingDay, &d.cfg.Rules.WorkOrders, p.Location)
	}
	w := &WorkOrder{
		ID: manualID(now), Company: co.ID, Project: p.ID, Device: r.Device, Category: category, Source: source,
		Title: title, Description: r.Description, Severity: severityOf(prio), Priority: prio, Skill: r.Skill,
		State: StateOpen, CreatedBy: who, OpenedAt: now, RaisedAt: now, SLADue: due.UTC(),
	}
	evs := []Event{d.record(w, Event{Action: ActionOpen, At: now, Who: who, Note: note, Photos: photos}, "")}
	if ev, ok := d.dispatch(w, now); ok {
		evs = append(evs, ev)
	}
	d.commit(ctx, evs)
	return d.copyOf(w, true), nil
}

func manualID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("wo-m-%s-%s", now.Format("20060102T150405"), hex.EncodeToString(b[:]))
}

func (d *Desk) device(id string) *config.DeviceInfo {
	for _, di := range d.cfg.Org.Devices() {
		if di.Device.ID == id {
			return &di
		}
	}
	return nil
}

// TransitionRequest moves a work order to another state.
type TransitionRequest struct {
	To    string `json:"to"`
	Note  string `json:"note,omitempty"`
	Photo string `json:"photo,omitempty"` // reference to a photo (URL or storage key)
	// Photos are ids of photos uploaded before (POST /workorders/{id}/photos);
	// at most MaxPhotos.
	Photos   []string `json:"photos,omitempty"`
	Assignee string   `json:"assignee,omitempty"` // for to = assigned
}

// Transition moves an order for the viewer. A state the lifecycle does not
// allow from the current one is a *TransitionError listing the allowed
// ones; a move the viewer's role may not make is ErrForbidden.
func (d *Desk) Transition(ctx context.Context, v alarm.Viewer, id string, r TransitionRequest) (WorkOrder, error) {
	photos, err := d.photosOf(ctx, id, r.Photos)
	if err != nil {
		return WorkOrder{}, err
	}
	if err := d.hold(ctx, id); err != nil {
		return WorkOrder{}, fmt.Errorf("cannot move work order %q: %w", id, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.orders[id]
	if w == nil || !v.Sees(w.Resource()) {
		return WorkOrder{}, fmt.Errorf("cannot move work order %q: %w", id, ErrNotFound)
	}
	if !slices.Contains(States, r.To) {
		return WorkOrder{}, fmt.Errorf("cannot move work order %q: unknown state %q (want one of %s): %w", id, r.To, strings.Join(States, ", "), ErrInvalid)
	}
	if !slices.Contains(transitions[w.State], r.To) {
		return WorkOrder{}, &TransitionError{ID: id, From: w.State, To: r.To, Allowed: Allowed(w.State)}
	}
	if !v.May(stepAction(w.State, r.To), w.Resource()) {
		return WorkOrder{}, fmt.Errorf("cannot move work order %q to %s: %s %q may not: %w", id, r.To, v.Role, v.Staff, ErrForbidden)
	}
	for _, p := range []string{textfield.Check("note", r.Note, textfield.MaxText), textfield.Check("photo", r.Photo, textfield.MaxRef)} {
		if p != "" {
			return WorkOrder{}, fmt.Errorf("cannot move work order %q: %s: %w", id, p, ErrInvalid)
		}
	}
	now := d.cfg.Now().UTC()
	from, prev := w.State, w.Assignee
	switch r.To {
	case StateAssigned:
		s := d.roster.find(r.Assignee)
		if r.Assignee == "" || !canBeAssigned(s, w.Company, w.Project) {
			return WorkOrder{}, fmt.Errorf("cannot assign work order %q: %q is not staff of project %q: %w", id, r.Assignee, w.Project, ErrInvalid)
		}
		w.Assignee, w.AssignedAt = r.Assignee, now
		w.AcceptedAt, w.StartedAt = time.Time{}, time.Time{}
	case StateAccepted:
		w.AcceptedAt = now
	case StateInProgress:
		if from == StateResolved {
			w.ResolvedAt = time.Time{}
		} else {
			w.StartedAt = now
		}
	case StateResolved:
		w.ResolvedAt = now
	case StateClosed:
		w.ClosedAt = now
	}
	w.State = r.To
	ev := d.record(w, Event{Action: ActionTransition, At: now, Who: v.Staff, From: from, Note: r.Note, Photo: r.Photo, Photos: photos}, prev)
	d.commit(ctx, []Event{ev})
	return d.copyOf(w, true), nil
}

// copyOf copies an order; with history it copies that too. d.mu must be held.
func (d *Desk) copyOf(w *WorkOrder, history bool) WorkOrder {
	out := *w
	out.History = nil
	if history {
		out.History = slices.Clone(w.History)
	}
	return out
}

// Get returns an order with its history, if the viewer may see it.
func (d *Desk) Get(ctx context.Context, v alarm.Viewer, id string) (WorkOrder, error) {
	w, err := d.find(ctx, id)
	if err != nil {
		return WorkOrder{}, fmt.Errorf("cannot find work order %q: %w", id, err)
	}
	if w == nil || !v.Sees(w.Resource()) {
		return WorkOrder{}, fmt.Errorf("cannot find work order %q: %w", id, ErrNotFound)
	}
	return *w, nil
}

// find returns a copy of a held order with its history, else the stored
// one; nil when there is none.
func (d *Desk) find(ctx context.Context, id string) (*WorkOrder, error) {
	d.mu.Lock()
	if w := d.orders[id]; w != nil {
		out := d.copyOf(w, true)
		d.mu.Unlock()
		return &out, nil
	}
	d.mu.Unlock()
	if d.hist == nil {
		return nil, nil
	}
	w, ok, err := d.hist.FindOrder(ctx, id)
	if err != nil || !ok {
		return nil, err
	}
	return &w, nil
}

// hold brings a stored order the desk no longer holds back into memory
// (a closed order asked to move: the lifecycle refuses it as before); the
// eviction lets it go again. d.mu must not be held.
func (d *Desk) hold(ctx context.Context, id string) error {
	d.mu.Lock()
	held := d.orders[id] != nil
	d.mu.Unlock()
	if held || d.hist == nil {
		return nil
	}
	w, ok, err := d.hist.FindOrder(ctx, id)
	if err != nil || !ok {
		return err
	}
	d.mu.Lock()
	if d.orders[id] == nil {
		d.orders[id] = &w
	}
	d.mu.Unlock()
	return nil
}

// Resource says where an order belongs, for access decisions; an order
// that does not exist is ErrNotFound.
func (d *Desk) Resource(ctx context.Context, id string) (access.Resource, error) {
	w, err := d.find(ctx, id)
	if err != nil {
		return access.Resource{}, err
	}
	if w == nil {
		return access.Resource{}, fmt.Errorf("cannot find work order %q: %w", id, ErrNotFound)
	}
	return w.Resource(), nil
}

// Filter selects work orders. Empty fields match everything.
type Filter struct {
	Project  string
	State    string
	Assignee string
	Device   string
	Since    time.Time // opened at or after
	Until    time.Time // opened before
	Limit    int       // default 500
}

// Validate reports every bad field.
func (f *Filter) Validate() error {
	var p config.Problems
	if f.State != "" && !slices.Contains(States, f.State) {
		p.Addf("state", "unknown state %q (want one of %s)", f.State, strings.Join(States, ", "))
	}
	if f.Limit < 0 {
		p.Addf("limit", "must be >= 0, got %d", f.Limit)
	}
	return p.Err()
}

func (f *Filter) limit() int {
	if f.Limit == 0 {
		return 500
	}
	return f.Limit
}

// match reports whether w matches the filter (not the viewer's scope).
func (f *Filter) match(w *WorkOrder) bool {
	return (f.Project == "" || w.Project == f.Project) &&
		(f.State == "" || w.State == f.State) &&
		(f.Assignee == "" || w.Assignee == f.Assignee) &&
		(f.Device == "" || w.Device == f.Device) &&
		(f.Since.IsZero() || !w.OpenedAt.Before(f.Since)) &&
		(f.Until.IsZero() || w.OpenedAt.Before(f.Until))
}

// newestFirst orders orders by opening time, newest first, then by id.
func newestFirst(out []WorkOrder) {
	sort.Slice(out, func(i, j int) bool {
		if !out[i].OpenedAt.Equal(out[j].OpenedAt) {
			return out[i].OpenedAt.After(out[j].OpenedAt)
		}
		return out[i].ID < out[j].ID
	})
}

// List returns the orders the viewer may see that match f, newest first,
// without their history. The desk holds every order not closed or
// cancelled and every order opened within the recent window
// (Config.Window); a list that reaches further back reads the older ones
// from the log's history, scoped to the viewer in the query.
func (d *Desk) List(ctx context.Context, v alarm.Viewer, f Filter) ([]WorkOrder, error) {
	return d.list(ctx, v, f, false)
}

// DeviceOrders returns a device's orders with their history, newest first:
// the device's maintenance record.
func (d *Desk) DeviceOrders(ctx context.Context, v alarm.Viewer, device string, f Filter) ([]WorkOrder, error) {
	f.Device = device
	return d.list(ctx, v, f, true)
}

func (d *Desk) list(ctx context.Context, v alarm.Viewer, f Filter, history bool) ([]WorkOrder, error) {
	limit := f.limit()
	d.mu.Lock()
	var out []WorkOrder
	for _, w := range d.orders {
		if v.Sees(w.Resource()) && f.match(w) {
			out = append(out, d.copyOf(w, history))
		}
	}
	unheld := d.unheld
	d.mu.Unlock()
	newestFirst(out)
	if d.hist == nil || unheld.IsZero() || f.State != "" && f.State != StateClosed && f.State != StateCancelled ||
		f.Since.After(unheld) || len(out) >= limit && out[limit-1].OpenedAt.After(unheld) {
		// Held orders answer it: every order not held is closed or
		// cancelled and was opened at or before unheld.
		return out[:min(len(out), limit)], nil
	}
	stored, err := d.hist.FindOrders(ctx, v.ScopeOf(access.KindWorkOrder), f)
	if err != nil {
		return nil, fmt.Errorf("cannot list work orders: %w", err)
	}
	seen := make(map[string]bool, len(out))
	for i := range out {
		seen[out[i].ID] = true
	}
	d.mu.Lock()
	for i := range stored {
		w := &stored[i]
		// A held order is newer in memory than in storage: its held copy
		// decided above.
		if seen[w.ID] || d.orders[w.ID] != nil || !v.Sees(w.Resource()) || !f.match(w) {
			continue
		}
		if !history {
			w.History = nil
		}
		out = append(out, *w)
	}
	d.mu.Unlock()
	newestFirst(out)
	return out[:min(len(out), limit)], nil
}

// Org is the organisation the desk serves.
func (d *Desk) Org() *config.Org { return d.cfg.Org }

// Now is the desk's clock.
func (d *Desk) Now() time.Time { return d.cfg.Now() }
