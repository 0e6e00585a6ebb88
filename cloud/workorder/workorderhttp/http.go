// Package workorderhttp serves the work-order desk over the API: lists,
// one order with its history, manual orders, transitions, a device's
// maintenance record and the HQ statistics. The workorder package itself
// knows nothing of HTTP.
package workorderhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/command"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/timerange"
)

// Alarms is what the desk's routes need from the alarm engine.
type Alarms interface {
	Alarms(ctx context.Context, v alarm.Viewer, f alarm.Filter) ([]alarm.Alarm, error)
	Steps(ctx context.Context, v alarm.Viewer, subject string, since time.Time) ([]alarm.Event, error)
}

// Routes are the desk's API routes; alarms feeds the device history and
// the statistics:
//
//	GET  /workorders?project=&state=&assignee=&device=&since=&until=&limit=
//	POST /workorders                            manual order (workorder.NewOrder)
//	GET  /workorders/:workorder                 with its history
//	POST /workorders/:workorder/transitions     workorder.TransitionRequest; 409 lists the allowed states
//	POST /workorders/:workorder/arrival         the assignee is on site (QR scan-in)
//	POST /workorders/:workorder/photos          a photo for a step (body: JPEG or PNG)
//	GET  /workorders/:workorder/photos/:photo   a photo a step carried (?size=thumb)
//	GET  /devices/:device/history?since=&until= the device's alarms, work orders and commands
//	GET  /stats/monthly?month=YYYY-MM           HQ statistics per project
//
// photos keeps the photos steps carry (the desk must be configured with the
// same store to accept them). WithCommands adds the device's remote-control
// commands to its maintenance record.
func Routes(d *workorder.Desk, alarms Alarms, photos *photo.Photos, opts ...Option) []api.Route {
	h := &handlers{d: d, alarms: alarms, photos: photos}
	for _, o := range opts {
		o(h)
	}
	order := api.Resource(access.KindWorkOrder, "workorder", h.owner)
	return append(h.photoRoutes(order), []api.Route{
		{Method: http.MethodGet, Path: "/workorders", Scope: api.AnyStaff(), Handler: h.list},
		{Method: http.MethodPost, Path: "/workorders", Scope: api.AnyStaff().Do(access.Create), Handler: h.create},
		{Method: http.MethodGet, Path: "/workorders/:workorder", Scope: order, Handler: h.get},
		{Method: http.MethodPost, Path: "/workorders/:workorder/transitions", Scope: order.Do(access.Transition), Handler: h.transition},
		{Method: http.MethodPost, Path: "/workorders/:workorder/arrival", Scope: order.Do(access.Work), Handler: h.arrive},
		{Method: http.MethodGet, Path: "/devices/:device/history", Scope: api.Device("device"), Handler: h.deviceHistory},
		{Method: http.MethodGet, Path: "/stats/monthly", Scope: api.Company().Do(access.Report), Handler: h.monthly},
	}...)
}

func (h *handlers) owner(ctx context.Context, id string) (access.Resource, error) {
	r, err := h.d.Resource(ctx, id)
	if errors.Is(err, workorder.ErrNotFound) {
		return access.Resource{}, fmt.Errorf("work order %q: %w", id, api.ErrNotFound)
	}
	return r, err
}

// Commands is what the maintenance record needs from remote control
// (*command.Desk).
type Commands interface {
	Record(ctx context.Context, device string, from, to time.Time, limit int) ([]command.View, error)
}

// Option adds to the desk's routes.
type Option func(*handlers)

// WithCommands puts a device's commands (who, when, why, value before and
// after, every state) into its maintenance record.
func WithCommands(c Commands) Option { return func(h *handlers) { h.commands = c } }

type handlers struct {
	d        *workorder.Desk
	alarms   Alarms
	photos   *photo.Photos
	commands Commands
}

func viewer(c echo.Context) alarm.Viewer { return alarmhttp.ViewerOf(api.PrincipalOf(c)) }

func filterFromQuery(c echo.Context) (workorder.Filter, error) {
	f := workorder.Filter{Project: c.QueryParam("project"), State: c.QueryParam("state"), Assignee: c.QueryParam("assignee"), Device: c.QueryParam("device")}
	var err error
	if f.Since, err = alarmhttp.TimeParam(c, "since"); err != nil {
		return f, err
	}
	if f.Until, err = alarmhttp.TimeParam(c, "until"); err != nil {
		return f, err
	}
	if v := c.QueryParam("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 5000 {
			return f, api.BadRequest("invalid limit %q: want 1 to 5000", v)
		}
	}
	if err := f.Validate(); err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) && len(ve.Problems) > 0 {
			return f, api.BadRequest("%s", ve.Problems[0])
		}
		return f, api.BadRequest("%v", err)
	}
	return f, nil
}

func (h *handlers) list(c echo.Context) error {
	f, err := filterFromQuery(c)
	if err != nil {
		return err
	}
	v := viewer(c)
	if f.Project != "" {
		if co, _, ok := h.d.Org().FindProject(f.Project); !ok || !v.SeesProject(co.ID, f.Project) {
			return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("project %q not found", f.Project)}
		}
	}
	list, err := h.d.List(c.Request().Context(), v, f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []workorder.WorkOrder{} // an empty list, not null
	}
	return c.JSON(http.StatusOK, map[string]any{"work_orders": list})
}

func (h *handlers) get(c echo.Context) error {
	w, err := h.d.Get(c.Request().Context(), viewer(c), c.Param("workorder"))
	if err != nil {
		return apiError(c, err)
	}
	return c.JSON(http.StatusOK, w)
}

func decodeBody(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.BadRequest("invalid JSON body: %v", err)
	}
	return nil
}

func (h *handlers) create(c echo.Context) error {
	var r workorder.NewOrder
	if err := decodeBody(c, &r); err != nil {
		return err
	}
	w, err := h.d.Create(c.Request().Context(), viewer(c), r)
	if err != nil {
		return apiError(c, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, api.Prefix+"/workorders/"+w.ID)
	return c.JSON(http.StatusCreated, w)
}

// arrive records the assignee's arrival on site: 201 with the order when
// recorded now, 200 when it was already.
func (h *handlers) arrive(c echo.Context) error {
	w, arrived, err := h.d.Arrive(c.Request().Context(), viewer(c), c.Param("workorder"))
	if err != nil {
		return apiError(c, err)
	}
	if arrived {
		return c.JSON(http.StatusCreated, w)
	}
	return c.JSON(http.StatusOK, w)
}

func (h *handlers) transition(c echo.Context) error {
	var r workorder.TransitionRequest
	if err := decodeBody(c, &r); err != nil {
		return err
	}
	w, err := h.d.Transition(c.Request().Context(), viewer(c), c.Param("workorder"), r)
	if err != nil {
		return apiError(c, err)
	}
	return c.JSON(http.StatusOK, w)
}

// History is a device's alarms and work orders (with their transitions)
// and the commands sent to it (with their states): its maintenance record.
type History struct {
	Device     string                `json:"device"`
	Alarms     []AlarmRecord         `json:"alarms"`
	WorkOrders []workorder.WorkOrder `json:"work_orders"`
	Commands   []command.View        `json:"commands"`
}

// AlarmRecord is an alarm with every step it went through.
type AlarmRecord struct {
	alarm.Alarm
	Steps []AlarmStep `json:"steps"`
}

// AlarmStep is one event of an alarm in the maintenance record: raise,
// repeat, update, clear, or an acknowledgement with who and its note.
type AlarmStep struct {
	N         uint32    `json:"n"`
	Kind      string    `json:"kind"`
	At        time.Time `json:"at"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Who       string    `json:"who,omitempty"`
	Note      string    `json:"note,omitempty"`
	Value     float64   `json:"value"`
	ReadingTS time.Time `json:"reading_ts,omitzero"`
}

func (h *handlers) deviceHistory(c echo.Context) error {
	dev := api.DeviceOf(c)
	since, err := alarmhttp.TimeParam(c, "since")
	if err != nil {
		return err
	}
	until, err := alarmhttp.TimeParam(c, "until")
	if err != nil {
		return err
	}
	v := viewer(c)
	ctx := c.Request().Context()
	orders, err := h.d.DeviceOrders(ctx, v, dev.Device.ID, workorder.Filter{Since: since, Until: until, Limit: 5000})
	if err != nil {
		return apiError(c, err)
	}
	out := History{Device: dev.Device.ID, Alarms: []AlarmRecord{}, WorkOrders: orders, Commands: []command.View{}}
	if h.commands != nil {
		cmds, err := h.commands.Record(ctx, dev.Device.ID, since, until, 5000)
		if err != nil {
			return fmt.Errorf("cannot read the commands of device %q: %w", dev.Device.ID, err)
		}
		out.Commands = cmds
	}
	if out.WorkOrders == nil {
		out.WorkOrders = []workorder.WorkOrder{}
	}
	alarms, err := h.alarms.Alarms(ctx, v, alarm.Filter{Device: dev.Device.ID, Since: since, Until: until, Limit: 5000})
	if err != nil {
		return apiError(c, err)
	}
	steps := map[string][]AlarmStep{}
	if len(alarms) > 0 {
		oldest := alarms[len(alarms)-1].RaisedAt.Add(-time.Second) // newest first; "at" is stored in seconds
		evs, err := h.alarms.Steps(c.Request().Context(), v, dev.Device.ID, oldest)
		if err != nil {
			return apiError(c, err)
		}
		for _, ev := range evs {
			steps[ev.Alarm.ID] = append(steps[ev.Alarm.ID], AlarmStep{N: ev.N, Kind: ev.Kind, At: ev.At, From: ev.From, To: ev.To,
				Who: ev.Who, Note: ev.Note, Value: ev.Value, ReadingTS: ev.ReadingTS})
		}
	}
	for _, a := range alarms {
		// In the alarm's own order: a raise or clear is stamped with
		// device time, an acknowledgement with the wall clock.
		rec := AlarmRecord{Alarm: a, Steps: steps[a.ID]}
		slices.SortFunc(rec.Steps, func(x, y AlarmStep) int { return int(x.N) - int(y.N) })
		if rec.Steps == nil {
			rec.Steps = []AlarmStep{}
		}
		out.Alarms = append(out.Alarms, rec)
	}
	return c.JSON(http.StatusOK, out)
}

// maxMonthAlarms is the most alarms one month's statistics read.
const maxMonthAlarms = 500_000

func (h *handlers) monthly(c echo.Context) error {
	month := c.QueryParam("month")
	now := h.d.Now()
	if month == "" {
		month = now.Format("2006-01")
	}
	y, m, err := workorder.ParseMonth(month)
	if err != nil {
		return api.BadRequest("invalid month %q: want YYYY-MM", month)
	}
	if err := timerange.Check("month", month, time.Date(y, m, 1, 0, 0, 0, 0, time.UTC), now); err != nil {
		return api.BadRequest("%s", err)
	}
	v := viewer(c)
	// Alarms raised around the month; each project's own zone decides.
	start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	ctx := c.Request().Context()
	alarms, err := h.alarms.Alarms(ctx, v, alarm.Filter{Since: start.Add(-24 * time.Hour), Until: start.AddDate(0, 1, 1), Limit: maxMonthAlarms + 1})
	if err != nil {
		return apiError(c, err)
	}
	if len(alarms) > maxMonthAlarms {
		return fmt.Errorf("cannot compute the statistics of %s: more than %d alarms around the month", month, maxMonthAlarms)
	}
	out, err := h.d.MonthlyStats(ctx, v, month, alarms, now)
	if err != nil {
		return apiError(c, err)
	}
	return c.JSON(http.StatusOK, out)
}

// apiError maps the desk's errors to API answers. An invalid transition is
// 409 with the allowed states next to the usual error fields.
func apiError(c echo.Context, err error) error {
	var te *workorder.TransitionError
	switch {
	case errors.As(err, &te):
		return c.JSON(http.StatusConflict, map[string]any{"error": map[string]any{
			"code": "conflict", "message": te.Error(), "request_id": api.RequestID(c),
			"state": te.From, "allowed": append([]string{}, te.Allowed...),
		}})
	case errors.Is(err, workorder.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, workorder.ErrForbidden):
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: err.Error()}
	case errors.Is(err, workorder.ErrInvalid):
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: err.Error()}
	}
	return err
}
