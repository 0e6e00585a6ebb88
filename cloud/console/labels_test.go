package console

import (
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/testenv"
)

var labelRE = regexp.MustCompile(`<img src="data:image/png;base64,([A-Za-z0-9+/=&#;]+)" alt="[^"]*" data-url="([^"]+)"`)

// The label sheet's QR codes decode (with zbarimg, an independent reader)
// to the devices' short addresses, one label per device of the project;
// a short address brings a visitor through sign-in to the device's page;
// a garden technician gets no sheet for the tower.
func TestDeviceLabels(t *testing.T) {
	zbar := testenv.LookPath(t, "PLANTROOM_SKIP_ZBAR", "zbarimg", "zbar-tools")
	ts, _, _ := newServer(t, Config{PublicURL: "https://plantroom.example.com/"})
	b := newBrowser(t, ts.URL)

	// The short address, before sign-in: to sign-in, then back to it.
	code, h, _ := b.do("GET", "/d/garden-pump-1", nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/signin?next=%2Fd%2Fgarden-pump-1" {
		t.Fatalf("/d/garden-pump-1 signed out: %d %q, want 303 to sign-in with next", code, h.Get("Location"))
	}
	tok := b.csrf("/signin?next=%2Fd%2Fgarden-pump-1")
	code, h, _ = b.do("POST", "/signin", url.Values{"csrf": {tok}, "staff": {"tech-garden-1"}, "password": {"demo-pw-tech-garden-1"}, "next": {"/d/garden-pump-1"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/d/garden-pump-1" {
		t.Fatalf("sign-in: %d %q, want back to /d/garden-pump-1", code, h.Get("Location"))
	}
	code, h, _ = b.do("GET", "/d/garden-pump-1", nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/devices/garden-pump-1" {
		t.Fatalf("/d/garden-pump-1 signed in: %d %q, want 303 to /devices/garden-pump-1", code, h.Get("Location"))
	}

	// Scope comes from the API: the tower's sheet is not the garden
	// technician's to see.
	if code, _, _ := b.do("GET", "/projects/tower/labels", nil); code != http.StatusNotFound {
		t.Fatalf("garden technician GET /projects/tower/labels: %d, want 404", code)
	}

	code, _, body := b.do("GET", "/projects/garden/labels", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /projects/garden/labels: %d", code)
	}
	bundle, err := config.LoadBundle("../../configs/org.yaml", "../../configs/tariffs.yaml", "../../configs/templates", "../../configs/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, d := range bundle.Org.Devices() {
		if d.Project.ID == "garden" {
			want["https://plantroom.example.com/d/"+url.PathEscape(d.Device.ID)] = true
			if !strings.Contains(body, ">"+html.EscapeString(d.Device.Name)+"<") {
				t.Errorf("no label names device %s (%s)", d.Device.ID, d.Device.Name)
			}
		}
	}
	ms := labelRE.FindAllStringSubmatch(body, -1)
	if len(want) == 0 || len(ms) != len(want) {
		t.Fatalf("the sheet has %d labels, the garden %d devices", len(ms), len(want))
	}
	dir := t.TempDir()
	for i, m := range ms {
		png, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "label.png")
		if err := os.WriteFile(f, png, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(zbar, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", f).Output()
		if err != nil {
			t.Fatalf("label %d (%s): zbarimg found no QR code: %v", i, m[2], err)
		}
		got := strings.TrimSpace(string(out))
		if m[2] = html.UnescapeString(m[2]); got != m[2] || !want[got] {
			t.Errorf("label %d decodes to %q; its caption says %q", i, got, m[2])
		}
		delete(want, got)
	}
	if len(want) > 0 {
		t.Errorf("devices without a label: %v", want)
	}
}

func TestPublicURLValidated(t *testing.T) {
	for _, u := range []string{"plantroom.example.com", "ftp://x", "https://x/?a=1", "https://"} {
		if _, err := New(Config{PublicURL: u}, Deps{Org: &config.Org{}}); err == nil || !strings.Contains(err.Error(), "public_url") {
			t.Errorf("public_url %q: %v, want a problem at console.public_url", u, err)
		}
	}
}
