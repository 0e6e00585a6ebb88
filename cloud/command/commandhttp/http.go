// Package commandhttp serves remote control over the API: a device's
// commands and one command's state. The command package itself knows
// nothing of HTTP.
package commandhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/command"
)

// Routes are the command desk's API routes:
//
//	POST /devices/:device/commands   {"point": "…", "value": 1, "reason": "…"}  → 202
//	GET  /devices/:device/commands?limit=&since=
//	GET  /commands/:command          the command with its history
func Routes(d *command.Desk) []api.Route {
	h := &handlers{d: d}
	return []api.Route{
		{Method: http.MethodPost, Path: "/devices/:device/commands", Scope: api.Device("device").Do(access.Command), Handler: h.submit},
		{Method: http.MethodGet, Path: "/devices/:device/commands", Scope: api.Device("device"), Handler: h.list},
		{Method: http.MethodGet, Path: "/commands/:command", Scope: api.Resource(access.KindCommand, "command", h.owner), Handler: h.get},
	}
}

type handlers struct{ d *command.Desk }

func (h *handlers) owner(ctx context.Context, id string) (access.Resource, error) {
	r, err := h.d.Resource(ctx, id)
	if errors.Is(err, command.ErrNotFound) {
		return r, fmt.Errorf("command %q: %w", id, api.ErrNotFound)
	}
	return r, err
}

// Body is the request body of POST /devices/{device}/commands.
type Body struct {
	Point  string   `json:"point"`
	Value  *float64 `json:"value"`
	Reason string   `json:"reason"`
}

func (h *handlers) submit(c echo.Context) error {
	var b Body
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return api.BadRequest("invalid JSON body: %v (want {\"point\": \"…\", \"value\": <number>, \"reason\": \"…\"})", err)
	}
	if dec.More() {
		return api.BadRequest("invalid JSON body: more than one object")
	}
	switch {
	case b.Point == "":
		return api.BadRequest("point is required (the name of a writable point of the device's template)")
	case b.Value == nil:
		return api.BadRequest("value is required (a number: 0/1 for a switch)")
	}
	p := api.PrincipalOf(c)
	dev := api.DeviceOf(c)
	cmd, err := h.d.Submit(c.Request().Context(), *p, command.Request{Device: dev.Device.ID, Point: b.Point, Value: *b.Value, Reason: b.Reason})
	if err != nil {
		return apiError(err)
	}
	c.Response().Header().Set(echo.HeaderLocation, api.Prefix+"/commands/"+cmd.Wire.ID)
	return c.JSON(http.StatusAccepted, cmd.View(dev.Project.Location))
}

func (h *handlers) list(c echo.Context) error {
	dev := api.DeviceOf(c)
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return api.BadRequest("invalid limit %q: want 1 to 500", v)
		}
		limit = n
	}
	var since time.Time
	if v := c.QueryParam("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return api.BadRequest("invalid since %q: want an RFC 3339 time such as 2025-03-01T00:00:00+08:00", v)
		}
		since = t
	}
	cmds, err := h.d.List(c.Request().Context(), dev.Device.ID, since, limit)
	if err != nil {
		return apiError(err)
	}
	out := make([]command.View, len(cmds))
	for i, cmd := range cmds {
		out[i] = cmd.View(dev.Project.Location)
	}
	return c.JSON(http.StatusOK, map[string]any{"device": dev.Device.ID, "commands": out})
}

func (h *handlers) get(c echo.Context) error {
	cmd, evs, err := h.d.Get(c.Request().Context(), c.Param("command"), true)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, cmd.View(nil).WithHistory(evs, nil))
}

func apiError(err error) error {
	switch {
	case errors.Is(err, command.ErrInvalid):
		return api.BadRequest("%s", err)
	case errors.Is(err, command.ErrRefused):
		return api.Unprocessable(err)
	case errors.Is(err, command.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, access.ErrForbidden):
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: err.Error()}
	case errors.Is(err, command.ErrUnavailable):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "the command could not be recorded, nothing was sent; try again shortly", Err: err}
	}
	return err
}
