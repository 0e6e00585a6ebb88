package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/api"
)

// The console asks the API for everything it shows, in process, with the
// viewer's own session: the same routes, scope checks and handlers as a
// bearer token would reach. A rule about who sees what therefore lives in
// the API (and its access policy) only; no page checks scope itself.

// APIError is an API answer other than 2xx.
type APIError struct {
	Status  int
	Code    string
	Message string
	Path    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("cannot get %s: %d %s: %s", e.Path, e.Status, e.Code, e.Message)
}

// statusOf is the HTTP status an error from the API stands for (500 for
// anything else).
func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusInternalServerError
}

// recorder is a minimal in-memory http.ResponseWriter.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) Flush() {}

// call sends method path (under /api/v1, with its query) to the API as the
// viewer of r, with body as JSON when not nil, and decodes the answer into
// out when not nil.
func (c *Console) call(r *http.Request, sess *Session, method, path string, body, out any) error {
	if body == nil {
		return c.send(r, sess, method, path, "", nil, out)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("cannot encode request to %s: %w", path, err)
	}
	return c.send(r, sess, method, path, "application/json", bytes.NewReader(b), out)
}

// send is call with a body of any type (a photo): rd, when not nil, is sent
// as contentType.
func (c *Console) send(r *http.Request, sess *Session, method, path, contentType string, rd io.Reader, out any) error {
	req, err := http.NewRequestWithContext(r.Context(), method, api.Prefix+path, rd)
	if err != nil {
		return fmt.Errorf("cannot build request %s: %w", path, err)
	}
	req.RemoteAddr = r.RemoteAddr
	// The API names the client by the same rule (X-Forwarded-For counts
	// only from api.trusted_proxies): its per-address limits see the
	// visitor, not the console.
	if v := r.Header.Values(echo.HeaderXForwardedFor); len(v) > 0 {
		req.Header[echo.HeaderXForwardedFor] = v
	}
	if ck, err := r.Cookie(sessionCookie); err == nil {
		req.AddCookie(ck)
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if sess != nil && !safeMethod(method) {
		req.Header.Set(CSRFHeader, sess.CSRF)
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	rec := &recorder{h: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status/100 != 2 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &e)
		return &APIError{Status: rec.status, Code: e.Error.Code, Message: e.Error.Message, Path: strings.SplitN(path, "?", 2)[0]}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("cannot decode the answer of %s: %w", path, err)
	}
	return nil
}

func (c *Console) get(r *http.Request, sess *Session, path string, out any) error {
	return c.call(r, sess, http.MethodGet, path, nil, out)
}
