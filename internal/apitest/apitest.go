// Package apitest sends JSON requests to an HTTP handler and checks the
// answers, for route tests of the API's packages.
package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Option changes a request before it is sent.
type Option func(*http.Request)

// From makes the request come from the address host (port 40000).
func From(host string) Option {
	return func(r *http.Request) { r.RemoteAddr = host + ":40000" }
}

// Call sends method target to h as the holder of the bearer token ("" for
// none). A nil body sends none; a string or []byte is sent as it is;
// anything else is encoded as JSON. A request with a body says it is JSON.
func Call(t testing.TB, h http.Handler, method, target, token string, body any, opts ...Option) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("cannot encode the body of %s %s: %v", method, target, err)
		}
		rd = bytes.NewReader(enc)
	}
	req := httptest.NewRequest(method, target, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// Expect fails the test unless rec has status want, then decodes its JSON
// body into v (nil: the body is not read).
func Expect(t testing.TB, rec *httptest.ResponseRecorder, want int, v any) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body.String())
	}
	if v == nil {
		return
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("cannot decode the answer: %v: %s", err, rec.Body.String())
	}
}

// Decode is Expect returning the decoded value.
func Decode[T any](t testing.TB, rec *httptest.ResponseRecorder, want int) T {
	t.Helper()
	var v T
	Expect(t, rec, want, &v)
	return v
}
