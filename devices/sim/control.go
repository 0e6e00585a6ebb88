package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// controlServer is the local HTTP API that injects faults and events at
// run time. It listens on loopback only (Config.Control is checked).
type controlServer struct {
	b   *Building
	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
}

func newControlServer(b *Building) *controlServer {
	c := &controlServer{b: b}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /devices", c.listDevices)
	mux.HandleFunc("GET /devices/{id}", c.getDevice)
	mux.HandleFunc("POST /devices/{id}/fault", c.setFault)
	mux.HandleFunc("DELETE /devices/{id}/fault", c.clearFault)
	mux.HandleFunc("POST /devices/{id}/events/{name}", c.event)
	mux.HandleFunc("POST /devices/{id}/trapped", c.eventNamed("trapped"))
	mux.HandleFunc("POST /devices/{id}/replace-meter", c.eventNamed("replace_meter"))
	mux.HandleFunc("GET /clock", c.getClock)
	mux.HandleFunc("POST /clock/advance", c.advance)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return c
}

func (c *controlServer) start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot start control API on %q: %w", addr, err)
	}
	c.ln = ln
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.srv.Serve(ln)
	}()
	return nil
}

func (c *controlServer) address() string {
	if c.ln == nil {
		return ""
	}
	return c.ln.Addr().String()
}

func (c *controlServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.srv.Shutdown(ctx)
	c.wg.Wait()
}

func (c *controlServer) listDevices(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.b.Devices())
}

func (c *controlServer) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, d := range c.b.Devices() {
		if d.ID == id {
			writeJSON(w, http.StatusOK, d)
			return
		}
	}
	writeError(w, fmt.Errorf("%w %q", ErrUnknownDevice, id))
}

// faultRequest is the body of POST /devices/{id}/fault.
type faultRequest struct {
	Unreachable      bool   `json:"unreachable"`
	Delay            string `json:"delay"`
	Exception        uint8  `json:"exception"`
	Garbage          bool   `json:"garbage"`
	SingleConnection bool   `json:"single_connection"`
	StuckOutputs     bool   `json:"stuck_outputs"`
	For              string `json:"for"` // virtual time until the fault clears itself
}

func (c *controlServer) setFault(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err := decodeStrictJSON(body, &req); err != nil {
		writeError(w, badRequest(err))
		return
	}
	var f Fault
	if err := f.fromWire(faultWire{Unreachable: req.Unreachable, Delay: req.Delay, Exception: req.Exception,
		Garbage: req.Garbage, SingleConnection: req.SingleConnection, StuckOutputs: req.StuckOutputs}); err != nil {
		writeError(w, badRequest(err))
		return
	}
	var d time.Duration
	if req.For != "" {
		var err error
		if d, err = time.ParseDuration(req.For); err != nil || d < 0 {
			writeError(w, badRequest(fmt.Errorf("cannot parse for %q: want a duration like \"5m\"", req.For)))
			return
		}
	}
	if err := c.b.SetFaultFor(r.PathValue("id"), f, d); err != nil {
		writeError(w, badRequest(err))
		return
	}
	c.getDevice(w, r)
}

func (c *controlServer) clearFault(w http.ResponseWriter, r *http.Request) {
	if err := c.b.ClearFault(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	c.getDevice(w, r)
}

func (c *controlServer) event(w http.ResponseWriter, r *http.Request) {
	c.eventNamed(r.PathValue("name"))(w, r)
}

func (c *controlServer) eventNamed(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := c.b.Event(r.PathValue("id"), name); err != nil {
			writeError(w, badRequest(err))
			return
		}
		c.getDevice(w, r)
	}
}

type clockStatus struct {
	Time   time.Time `json:"time"`
	Speed  float64   `json:"speed"`
	Manual bool      `json:"manual"`
}

func (c *controlServer) getClock(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, clockStatus{Time: c.b.Now(), Speed: c.b.clock.Speed(), Manual: c.b.clock.Manual()})
}

func (c *controlServer) advance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		By string `json:"by"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	if err := decodeStrictJSON(body, &req); err != nil {
		writeError(w, badRequest(err))
		return
	}
	d, err := time.ParseDuration(req.By)
	if err != nil {
		writeError(w, badRequest(fmt.Errorf("cannot parse by %q: want a duration like \"1h\"", req.By)))
		return
	}
	if err := c.b.Advance(d); err != nil {
		writeError(w, &httpError{code: http.StatusConflict, err: err})
		return
	}
	c.getClock(w, r)
}

type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(err error) error { return &httpError{code: http.StatusBadRequest, err: err} }

// writeError answers {"error": "..."}: 404 for unknown devices, the
// httpError's code, else 500.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	}
	if errors.Is(err, ErrUnknownDevice) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodeStrictJSON decodes one JSON value; unknown fields and trailing
// data are errors, an empty body is an empty object.
func decodeStrictJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("cannot decode JSON body: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("cannot decode JSON body: trailing data")
	}
	return nil
}
