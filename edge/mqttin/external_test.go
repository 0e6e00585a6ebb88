package mqttin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/nettest"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func externalConfig(url string) Config {
	return Config{External: &External{URL: url, ClientID: "plantroom-edge-test", MaxReconnectInterval: config.D(200 * time.Millisecond)}}
}

func (ti *testInput) waitConnected(t *testing.T, want float64) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("connected = %v", want), func() bool { return testutil.ToFloat64(ti.metrics.connected) == want })
}

// Against a real mosquitto: retained availability counts, retained
// telemetry (of unknown age) does not, live messages map as on the
// embedded broker.
func TestExternalMosquitto(t *testing.T) {
	m := nettest.StartMosquitto(t, nettest.MosquittoOptions{})
	dev, err := device(t, m.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dev, "tele/garden_garage/LWT", true, "Online")
	publish(t, dev, "tele/garden_garage/SENSOR", true, `{"ENERGY":{"Total":1.5,"Power":3}}`)
	publish(t, dev, "shellyplus1pm-garden01/online", true, "false")

	in := startInput(t, externalConfig(m.URL()), demoDevices(t))
	in.waitConnected(t, 1)
	waitFor(t, 5*time.Second, "the retained availability", func() bool { return len(in.got.stateLog()) == 2 })
	if !in.got.hasState("garden-plug-1=online") || !in.got.hasState("garden-shelly-1=offline") {
		t.Errorf("states %v, want the plug online and the shelly offline", in.got.stateLog())
	}

	// Tasmota with SensorRetain publishes telemetry retained: live, it
	// reaches an existing subscription as a normal message.
	publish(t, dev, "tele/garden_garage/SENSOR", true, tasmotaSensor)
	publish(t, dev, "stat/garden_garage/POWER", false, "OFF")
	publish(t, dev, "shellyplus1pm-garden01/online", true, "true")
	publish(t, dev, "shellyplus1pm-garden01/status/switch:0", false, shellyStatus)
	waitFor(t, 10*time.Second, "both devices' readings", func() bool {
		return len(in.got.latest("garden-plug-1")) == 5 && len(in.got.latest("garden-shelly-1")) == 5
	})
	checkValues(t, in.got.latest("garden-plug-1"), map[string]float64{
		"energy_kwh": 123.456, "power_w": 60, "voltage_v": 230, "current_a": 0.283, "switch_on": 0})
	checkValues(t, in.got.latest("garden-shelly-1"), map[string]float64{
		"energy_kwh": 6.5321, "power_w": 8.9, "voltage_v": 237.5, "switch_on": 1, "temperature_c": 23.5})
	for _, r := range in.got.readings {
		if r.Device == "garden-plug-1" && r.Metric == "energy_kwh" && r.Value == 1.5 {
			t.Errorf("reading %+v from the stale retained telemetry", r)
		}
	}
	if !in.got.hasState("garden-shelly-1=online") {
		t.Errorf("states %v: the shelly did not come online", in.got.stateLog())
	}

	// The broker goes away and comes back: the input reconnects and
	// subscribes again (the session is clean).
	m.Stop()
	in.waitConnected(t, 0)
	m.Start()
	in.waitConnected(t, 1)
	dev, err = device(t, m.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dev, "stat/garden_garage/POWER", false, "ON")
	waitFor(t, 10*time.Second, "a reading after the reconnect", func() bool { return in.got.latest("garden-plug-1")["switch_on"] == 1 })
}

// A site broker that is down at start is not an error: the input connects
// when it comes up, and Stop works at any point.
func TestExternalBrokerDownAtStart(t *testing.T) {
	port := nettest.FreePort(t)
	in := startInput(t, externalConfig(fmt.Sprintf("tcp://127.0.0.1:%d", port)), demoDevices(t))
	if v := testutil.ToFloat64(in.metrics.connected); v != 0 {
		t.Fatalf("connected = %v without a broker", v)
	}
	m := nettest.StartMosquitto(t, nettest.MosquittoOptions{Port: port})
	in.waitConnected(t, 1)
	dev, err := device(t, m.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dev, "stat/garden_garage/POWER", false, "ON")
	waitFor(t, 10*time.Second, "a reading", func() bool { return in.got.latest("garden-plug-1")["switch_on"] == 1 })

	// Stopped while the broker is unreachable: returns, nothing leaks.
	lonely := startInput(t, externalConfig(fmt.Sprintf("tcp://127.0.0.1:%d", nettest.FreePort(t))), demoDevices(t))
	lonely.Stop()
	lonely.Stop()
}

// Update subscribes to new devices' topics and unsubscribes from removed
// ones while connected.
func TestExternalUpdate(t *testing.T) {
	m := nettest.StartMosquitto(t, nettest.MosquittoOptions{})
	devs := demoDevices(t)
	in := startInput(t, externalConfig(m.URL()), devs[:1])
	in.waitConnected(t, 1)
	dev, err := device(t, m.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Update(devs[1:]); err != nil {
		t.Fatal(err)
	}
	// Messages of one publisher arrive in order: once the shelly's reading
	// is in, the plug's message before it would have been too.
	publish(t, dev, "stat/garden_garage/POWER", false, "ON")
	publish(t, dev, "shellyplus1pm-garden01/status/switch:0", false, shellyStatus)
	waitFor(t, 10*time.Second, "shelly readings", func() bool { return len(in.got.latest("garden-shelly-1")) == 5 })
	if got := in.got.latest("garden-plug-1"); len(got) != 0 {
		t.Errorf("readings %v of a removed device", got)
	}
	if n := testutil.ToFloat64(in.metrics.unknown); n != 0 {
		t.Errorf("unknown topic messages = %v: the removed device's topics are still subscribed", n)
	}
}

// TLS to a mosquitto with a certificate from a test CA.
func TestExternalTLS(t *testing.T) {
	dir := t.TempDir()
	ca := writeTestPKI(t, dir)
	// "user root": run as root, mosquitto would otherwise switch to its own
	// user, which cannot read the test's private temporary directory.
	m := nettest.StartMosquitto(t, nettest.MosquittoOptions{Config: fmt.Sprintf("user root\ncafile %s\ncertfile %s\nkeyfile %s\n",
		ca, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))})
	cfg := externalConfig("ssl://" + m.Addr())
	cfg.External.TLS = &TLS{CAFile: ca}
	in := startInput(t, cfg, demoDevices(t))
	in.waitConnected(t, 1)

	// The server name defaults to the URL's host; without a CA file the
	// system roots verify the broker.
	tc, err := tlsConfig(External{URL: "mqtts://broker.example:8883", TLS: &TLS{}})
	if err != nil || tc.ServerName != "broker.example" || tc.RootCAs != nil {
		t.Errorf("default TLS config: server name %q, own roots %v, error %v", tc.ServerName, tc.RootCAs != nil, err)
	}

	if _, err := New(Config{External: &External{URL: "ssl://" + m.Addr(), TLS: &TLS{CAFile: filepath.Join(dir, "missing.pem")}}},
		demoDevices(t), Options{Sink: (&collector{}).sink, Log: discard}); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	if _, err := New(Config{External: &External{URL: "ssl://" + m.Addr(), TLS: &TLS{CAFile: filepath.Join(dir, "server.key")}}},
		demoDevices(t), Options{Sink: (&collector{}).sink, Log: discard}); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Errorf("CA file without certificates: %v", err)
	}
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 into dir
// and returns the CA file.
func writeTestPKI(t *testing.T, dir string) string {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plantroom test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey := key()
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write("server.pem", "CERTIFICATE", srvDER)
	write("server.key", "PRIVATE KEY", keyDER)
	return write("ca.pem", "CERTIFICATE", caDER)
}
