package sim

import (
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/plantroom/plantroom/internal/testenv"
)

// mbpoll runs Debian's mbpoll once against a simulated device and returns
// the values it printed by reference number.
func mbpoll(t *testing.T, addr string, args ...string) map[int]string {
	t.Helper()
	bin := testenv.LookPath(t, "PLANTROOM_SKIP_MBPOLL", "mbpoll", "mbpoll")
	host, port, _ := net.SplitHostPort(addr)
	args = append(args, "-p", port, "-1", "-o", "5", host)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
	}
	vals := map[int]string{}
	for _, m := range regexp.MustCompile(`\[(\d+)\]:\s+(\S+)`).FindAllStringSubmatch(string(out), -1) {
		ref, _ := strconv.Atoi(m[1])
		vals[ref] = m[2]
	}
	if len(vals) == 0 {
		t.Fatalf("mbpoll printed no values:\n%s", out)
	}
	return vals
}

func TestMbpollReadsTheMeter(t *testing.T) {
	cfg := testConfig()
	cfg.Devices[0].Initial = map[string]float64{"energy_import_kwh": 286431.5}
	b := startBuilding(t, cfg)
	if err := b.Advance(3 * time.Hour); err != nil {
		t.Fatal(err)
	}
	want, _ := b.Values("meter")
	tmpl := b.byID["meter"].tmpl

	// The command devices/README.md shows: import kWh, reference 73 = address 0x48.
	got := mbpoll(t, b.Addr("meter"), "-m", "tcp", "-a", "1", "-t", "3:float", "-B", "-r", "73", "-c", "1")
	v, err := strconv.ParseFloat(got[73], 64)
	if err != nil {
		t.Fatalf("mbpoll printed %q for reference 73", got[73])
	}
	w := Quantizer(tmpl, "energy_import_kwh")(want["energy_import_kwh"])
	if v < 286431.5 || abs(v-w) > 1e-5*w { // mbpoll prints 6 significant digits
		t.Errorf("mbpoll read %v kWh, model says %v", v, w)
	}
	// Voltages L1–L3 in one go.
	got = mbpoll(t, b.Addr("meter"), "-m", "tcp", "-a", "1", "-t", "3:float", "-B", "-r", "1", "-c", "3")
	for i, ref := range []int{1, 3, 5} {
		v, _ := strconv.ParseFloat(got[ref], 64)
		w := want["voltage_l"+strconv.Itoa(i+1)+"_v"]
		if abs(v-w) > 1e-4*w {
			t.Errorf("mbpoll voltage L%d = %v, model %v", i+1, v, w)
		}
	}
	// Holding registers of a pump as plain integers.
	pv, _ := b.Values("pump-1")
	got = mbpoll(t, b.Addr("pump-1"), "-m", "tcp", "-a", "1", "-t", "4", "-r", "5", "-c", "2")
	if p, _ := strconv.Atoi(got[5]); abs(float64(p)*0.01-pv["outlet_pressure_bar"]) > 0.006 {
		t.Errorf("mbpoll pressure register %v, model %v bar", got[5], pv["outlet_pressure_bar"])
	}
	if got[6] != "300" {
		t.Errorf("mbpoll setpoint register %v, want 300 (3.00 bar)", got[6])
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
