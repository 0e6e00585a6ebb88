// Package alarmhttp serves the alarm engine over the API: the alarm list,
// one alarm, acknowledgement and the staff feed as server-sent events. The
// alarm package itself knows nothing of HTTP.
package alarmhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/textfield"
	"github.com/plantroom/plantroom/internal/timerange"
)

// ViewerOf is the authenticated API caller (a zero Principal, who sees
// nothing, when there is none).
func ViewerOf(p *api.Principal) alarm.Viewer {
	if p == nil {
		return alarm.Viewer{}
	}
	return *p
}

// StreamHeartbeat is how often an idle alarm stream sends a comment line.
const StreamHeartbeat = 15 * time.Second

// Routes are the alarm engine's API routes:
//
//	GET  /alarms?project=&state=&severity=&device=&since=&until=&limit=
//	GET  /alarms/stream          server-sent events, resumable with Last-Event-ID
//	GET  /alarms/:alarm
//	POST /alarms/:alarm/ack      {"note": "…"}
func Routes(e *alarm.Engine) []api.Route {
	h := &handlers{e: e}
	res := api.Resource(access.KindAlarm, "alarm", h.owner)
	return []api.Route{
		{Method: http.MethodGet, Path: "/alarms", Scope: api.AnyStaff(), Handler: h.list},
		{Method: http.MethodGet, Path: "/alarms/stream", Scope: api.AnyStaff(), Handler: h.stream, Stream: true},
		{Method: http.MethodGet, Path: "/alarms/:alarm", Scope: res, Handler: h.get},
		{Method: http.MethodPost, Path: "/alarms/:alarm/ack", Scope: res.Do(access.Acknowledge), Handler: h.ack},
	}
}

type handlers struct{ e *alarm.Engine }

func (h *handlers) owner(ctx context.Context, id string) (access.Resource, error) {
	r, err := h.e.Resource(ctx, id)
	if errors.Is(err, alarm.ErrNotFound) {
		return access.Resource{}, fmt.Errorf("alarm %q: %w", id, api.ErrNotFound)
	}
	return r, err
}

// FilterFromQuery reads an alarm filter from query parameters.
func FilterFromQuery(c echo.Context) (alarm.Filter, error) {
	f := alarm.Filter{Project: c.QueryParam("project"), State: c.QueryParam("state"), Severity: c.QueryParam("severity"), Device: c.QueryParam("device")}
	var err error
	if f.Since, err = TimeParam(c, "since"); err != nil {
		return f, err
	}
	if f.Until, err = TimeParam(c, "until"); err != nil {
		return f, err
	}
	if v := c.QueryParam("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 5000 {
			return f, api.BadRequest("invalid limit %q: want 1 to 5000", v)
		}
	}
	if err := f.Validate(); err != nil {
		return f, api.BadRequest("%s", problemText(err))
	}
	return f, nil
}

// TimeParam parses an optional RFC 3339 query parameter.
func TimeParam(c echo.Context, name string) (time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, api.BadRequest("invalid %s %q: want an RFC 3339 time such as 2025-03-01T00:00:00+08:00", name, v)
	}
	if err := timerange.Check(name, v, t, time.Now()); err != nil {
		return time.Time{}, api.BadRequest("%s", err)
	}
	return t, nil
}

func problemText(err error) string {
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		return strings.Join(ve.Problems, "; ")
	}
	return err.Error()
}

func (h *handlers) list(c echo.Context) error {
	f, err := FilterFromQuery(c)
	if err != nil {
		return err
	}
	v := ViewerOf(api.PrincipalOf(c))
	if f.Project != "" {
		if co, _, ok := h.e.Org().FindProject(f.Project); !ok || !v.SeesProject(co.ID, f.Project) {
			return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("project %q not found", f.Project)}
		}
	}
	list, err := h.e.Alarms(c.Request().Context(), v, f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []alarm.Alarm{} // an empty list, not null
	}
	return c.JSON(http.StatusOK, map[string]any{"alarms": list})
}

func (h *handlers) get(c echo.Context) error {
	a, err := h.e.Alarm(c.Request().Context(), ViewerOf(api.PrincipalOf(c)), c.Param("alarm"))
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, a)
}

func (h *handlers) ack(c echo.Context) error {
	var body struct {
		Note string `json:"note"`
	}
	if c.Request().ContentLength != 0 {
		if err := json.NewDecoder(c.Request().Body).Decode(&body); err != nil {
			return api.BadRequest("invalid JSON body: %v", err)
		}
	}
	if p := textfield.Check("note", body.Note, textfield.MaxText); p != "" {
		return api.BadRequest("%s", p)
	}
	a, err := h.e.Ack(c.Request().Context(), ViewerOf(api.PrincipalOf(c)), c.Param("alarm"), body.Note)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, a)
}

func apiError(err error) error {
	switch {
	case errors.Is(err, alarm.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, alarm.ErrForbidden):
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: err.Error()}
	case errors.Is(err, alarm.ErrNotStarted):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: err.Error()}
	}
	return err
}

// stream serves the staff feed as server-sent events: every alarm
// and work-order event the caller may see, "id:" the feed sequence. A
// client resuming with Last-Event-ID (or ?last_event_id=) gets what it
// missed first; without one it gets new events only. ?project= narrows it.
func (h *handlers) stream(c echo.Context) error {
	v := ViewerOf(api.PrincipalOf(c))
	project := c.QueryParam("project")
	feed := h.e.Feed()
	after := feed.Last()
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("last_event_id")
	}
	if last != "" {
		n, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			return api.BadRequest("invalid Last-Event-ID %q: want the id of an event", last)
		}
		after = n
	}
	return ServeFeed(c.Request().Context(), c.Response(), feed, v, project, after, StreamHeartbeat)
}

// ServeFeed writes the feed items after `after` that v may see to w as
// server-sent events until ctx ends.
func ServeFeed(ctx context.Context, w http.ResponseWriter, f *alarm.Feed, v alarm.Viewer, project string, after uint64, heartbeat time.Duration) error {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	sub, cancel := f.Subscribe()
	defer cancel()
	if _, err := fmt.Fprint(w, "retry: 3000\n: plantroom alarm stream\n\n"); err != nil {
		return nil
	}
	_ = rc.Flush()
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	const batch = 256
	for {
		items, err := f.Read(ctx, after, batch)
		if err != nil {
			// Storage is unavailable for an old resume point: tell the client and end.
			fmt.Fprintf(w, "event: error\ndata: %q\n\n", "cannot replay missed events: "+err.Error())
			_ = rc.Flush()
			return nil
		}
		for _, it := range items {
			after = it.Seq
			if !it.VisibleTo(v) || project != "" && it.Project != project {
				continue
			}
			data, err := json.Marshal(it.Data)
			if err != nil {
				return fmt.Errorf("cannot encode feed item %d: %w", it.Seq, err)
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", it.Seq, it.Type, data); err != nil {
				return nil // client gone
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		if len(items) == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub:
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}
