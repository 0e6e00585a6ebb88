package sim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goburrow/modbus"
)

// call sends a control API request and decodes the JSON answer into out.
func call(t *testing.T, b *Building, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+b.ControlAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: cannot decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func TestControlAPI(t *testing.T) {
	cfg := testConfig()
	cfg.Control = "127.0.0.1:0"
	b := startBuilding(t, cfg)

	var list []DeviceStatus
	if code := call(t, b, "GET", "/devices", "", &list); code != 200 || len(list) != 5 || list[0].ID != "meter" || list[0].Addr != b.Addr("meter") {
		t.Fatalf("GET /devices: %d %+v", code, list)
	}
	if _, ok := list[0].Values["energy_import_kwh"]; !ok {
		t.Errorf("GET /devices lists no meter values: %v", list[0].Values)
	}

	// An exception code, injected over HTTP, seen by the edge's client.
	var st DeviceStatus
	if code := call(t, b, "POST", "/devices/meter/fault", `{"exception": 4}`, &st); code != 200 || st.Fault.Exception != 4 {
		t.Fatalf("POST fault: %d %+v", code, st)
	}
	c, _ := tcpClient(t, b.Addr("meter"), 5*time.Second)
	_, err := c.ReadInputRegisters(0, 2)
	var me *modbus.ModbusError
	if !errors.As(err, &me) || me.ExceptionCode != 4 {
		t.Fatalf("read with exception fault: %v", err)
	}
	if code := call(t, b, "DELETE", "/devices/meter/fault", "", &st); code != 200 || !st.Fault.IsZero() {
		t.Fatalf("DELETE fault: %d %+v", code, st)
	}
	if _, err := c.ReadInputRegisters(0, 2); err != nil {
		t.Fatalf("read after clearing: %v", err)
	}
	if code := call(t, b, "POST", "/devices/meter/fault", `{"stuck_outputs": true}`, &st); code != 200 || !st.Fault.StuckOutputs {
		t.Fatalf("POST stuck_outputs: %d %+v", code, st)
	}
	if code := call(t, b, "DELETE", "/devices/meter/fault", "", &st); code != 200 || !st.Fault.IsZero() {
		t.Fatalf("DELETE fault: %d %+v", code, st)
	}

	// A fault for a while of virtual time.
	if code := call(t, b, "POST", "/devices/meter/fault", `{"delay": "50ms", "for": "10m"}`, &st); code != 200 || st.Fault.Delay != 50*time.Millisecond {
		t.Fatalf("POST timed fault: %d %+v", code, st)
	}
	var clock clockStatus
	if code := call(t, b, "POST", "/clock/advance", `{"by": "11m"}`, &clock); code != 200 || !clock.Time.Equal(testStart.Add(11*time.Minute)) {
		t.Fatalf("advance: %d %+v", code, clock)
	}
	eventually(t, 5*time.Second, "the timed fault to clear", func() bool { f, _ := b.Fault("meter"); return f.IsZero() })

	// Events.
	if code := call(t, b, "POST", "/devices/lift/trapped", "", &st); code != 200 || st.Values["trapped"] != 1 {
		t.Fatalf("trapped: %d %+v", code, st.Values)
	}
	l, _ := tcpClient(t, b.Addr("lift"), 5*time.Second)
	if bits, err := l.ReadDiscreteInputs(0, 2); err != nil || bits[0] != 0b01 {
		t.Errorf("discrete inputs after trapped = %08b, %v; want trapped=1, safety_ok=0", bits, err)
	}
	if code := call(t, b, "POST", "/devices/meter/replace-meter", "", &st); code != 200 || st.Values["energy_import_kwh"] != 0 {
		t.Errorf("replace-meter: %d %v", code, st.Values["energy_import_kwh"])
	}
	if code := call(t, b, "POST", "/devices/pump-1/events/dry_run", "", &st); code != 200 {
		t.Errorf("dry_run: %d", code)
	}

	// Errors: one JSON shape, the right status.
	var e map[string]string
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/devices/nope/fault", `{"garbage": true}`, 404},
		{"GET", "/devices/nope", "", 404},
		{"POST", "/devices/meter/fault", `{"garbage": "yes"}`, 400},
		{"POST", "/devices/meter/fault", `{"slow": "2s"}`, 400},
		{"POST", "/devices/meter/fault", `{"exception": 9}`, 400},
		{"POST", "/devices/meter/fault", `{"delay": "soon"}`, 400},
		{"POST", "/devices/meter/events/trapped", "", 400},
		{"POST", "/clock/advance", `{"by": "-1h"}`, 409},
	} {
		if code := call(t, b, tc.method, tc.path, tc.body, &e); code != tc.code || e["error"] == "" {
			t.Errorf("%s %s %s: %d %v, want %d with an error", tc.method, tc.path, tc.body, code, e, tc.code)
		}
	}
}
