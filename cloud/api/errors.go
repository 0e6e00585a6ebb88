package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/internal/timerange"
)

// Error is an API error with its HTTP status and a stable code. Handlers
// return one (or any error: the error handler maps the rest).
type Error struct {
	Status  int
	Code    string // stable, machine-readable: "not_found", "bad_request", …
	Message string // for people; names the offending value
	Err     error  // cause, logged for 5xx only, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Error codes.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooLarge         = "payload_too_large"
	CodeUnprocessable    = "unprocessable"
	CodeConflict         = "conflict"
	CodeTooManyRequests  = "too_many_requests"
	CodeTimeout          = "timeout"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// BadRequest reports an invalid request; format should name the value (%q).
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// Unprocessable reports a well-formed request the data cannot answer.
func Unprocessable(err error) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeUnprocessable, Message: err.Error()}
}

func notFound(kind, id string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", kind, id)}
}

func forbidden(p *Principal, a access.Action) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden,
		Message: fmt.Sprintf("role %s may not %s this resource", p.Role, verbs[a])}
}

// verbs say what an action does, for error messages.
var verbs = map[access.Action]string{
	access.View: "read", access.Report: "read reports of", access.Acknowledge: "acknowledge",
	access.Create: "create in", access.Manage: "manage", access.Work: "work on", access.Transition: "move",
	access.Contact: "read the contact details of", access.Command: "command",
}

var (
	errUnauthorized = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
		Message: "missing bearer token (send Authorization: Bearer <token>)"}
	errInvalidToken = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "invalid token"}
)

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// toError maps any error a handler or middleware returns to an *Error.
func toError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && m != "" {
			msg = m
		}
		return &Error{Status: he.Code, Code: codeOf(he.Code), Message: msg, Err: he.Internal}
	}
	var te *timerange.Error
	switch {
	case errors.As(err, &te):
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error()}
	case errors.Is(err, energy.ErrFuture):
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error()}
	case errors.Is(err, energy.ErrNoTariff):
		return Unprocessable(err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		// The second: a ClickHouse read cut off by the socket's deadline,
		// which the driver sets from the request's ("i/o timeout").
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeTimeout, Message: "the request took too long", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}

func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusUnprocessableEntity:
		return CodeUnprocessable
	case http.StatusConflict:
		return CodeConflict
	case http.StatusTooManyRequests:
		return CodeTooManyRequests
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeBadRequest
}

// handleError is Echo's HTTPErrorHandler: the one place errors become
// responses. It logs server errors (5xx) only; client errors show in the
// access log.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	e := toError(err)
	id := requestID(c)
	if e.Status >= 500 {
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, "request failed",
			slog.String("request_id", id), slog.String("method", c.Request().Method),
			slog.String("path", c.Request().URL.Path), slog.Int("status", e.Status), slog.Any("err", err))
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(e.Status)
	} else {
		werr = c.JSON(e.Status, errorBody{errorDetail{Code: e.Code, Message: e.Message, RequestID: id}})
	}
	if werr != nil {
		s.log.Debug("cannot write error response", "request_id", id, "err", werr)
	}
}
