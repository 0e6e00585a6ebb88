package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/internal/testenv"
)

// system is a whole Plantroom on loopback: the cloud (console and API), the
// garden building simulated live with its edge agent, and history of both
// projects from the last four days of the previous month.
type system struct {
	root    string // repository root
	URL     string // console and API: http://127.0.0.1:port
	Broker  string
	Control string // garden devsim control API: http://127.0.0.1:port
	Month   string // the current month (Asia/Shanghai)
	Prev    string // the month before
	Order   string // a work order the technician took a step on, with a photo (for the screenshots)
	Command string // the garage lights command the project manager sent (for the screenshots)
	loc     *time.Location
}

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("cannot find the repository root from %s: %v", dir, err)
	}
	return dir
}

// freePort returns a loopback address nobody listens on right now and
// that no other freePort of this test binary returned.
func freePort(t testing.TB) string { return nettest.FreeAddr(t) }

// TestMain removes the binaries the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds bin/cloud, bin/devsim and bin/edge-agent once per test
// binary.
func binaries(t testing.TB, root string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "plantroom-console-bin-")
		if buildErr != nil {
			return
		}
		for _, p := range []string{"./cloud/cmd/cloud", "./devices/cmd/devsim", "./edge/cmd/edge-agent"} {
			cmd := exec.Command("go", "build", "-o", binDir+"/", p)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("cannot build %s: %v\n%s", p, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// child runs a process for the test's duration, its output in a log file.
func child(t testing.TB, dir, logPath, bin string, args ...string) {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 25 {
				lines = lines[len(lines)-25:]
			}
			t.Logf("last lines of %s:\n%s", filepath.Base(logPath), strings.Join(lines, "\n"))
		}
	})
}

func waitHTTP(t testing.TB, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s (last: %v)", url, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startSystem starts everything and returns once history is stored and the
// garden edge agent runs.
func startSystem(t *testing.T) *system {
	t.Helper()
	root := repoRoot(t)
	bins := binaries(t, root)
	_, db := chtest.NewDatabase(t)
	ch := chtest.Addr(t)
	dir := t.TempDir()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	now := time.Now().In(loc)
	s := &system{root: root, loc: loc, Month: now.Format("2006-01"),
		Prev: time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, loc).Format("2006-01")}

	api, broker := freePort(t), freePort(t)
	s.URL, s.Broker = "http://"+api, broker
	cfg := fmt.Sprintf(`org: %[1]s/configs/org.yaml
tariffs: %[1]s/configs/tariffs.yaml
templates: %[1]s/configs/templates
rules: %[1]s/configs/rules.yaml
log: {level: info}
metrics: {listen: "off"}
broker: {listen: %[2]q}
ingest: {flush_interval: 100ms}
api: {listen: %[3]q}
clickhouse: {addr: %[4]q, user: %[5]q, password: %[6]q, database: %[7]s}
`, root, broker, api, ch.Addr, ch.User, ch.Password, db)
	write(t, filepath.Join(dir, "cloud.yaml"), cfg)
	child(t, root, filepath.Join(dir, "cloud.log"), bins+"/cloud", "-config", filepath.Join(dir, "cloud.yaml"))
	waitHTTP(t, s.URL+"/readyz", 60*time.Second)

	// Port map for the garden building and its edge agent.
	ports := map[string]string{}
	for i := 1; i <= 6; i++ {
		ports[fmt.Sprintf("127.0.0.1:1510%d", i)] = freePort(t)
	}
	ports["127.0.0.1:15190"] = freePort(t)
	ports["127.0.0.1:1884"] = freePort(t)
	ports["127.0.0.1:9102"] = freePort(t)
	ports["127.0.0.1:1883"] = broker
	s.Control = "http://" + ports["127.0.0.1:15190"]
	rewrite := func(src string, extra ...string) string {
		b, err := os.ReadFile(filepath.Join(root, "configs", src))
		if err != nil {
			t.Fatal(err)
		}
		out := string(b)
		for from, to := range ports {
			out = strings.ReplaceAll(out, from, to)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			if !strings.Contains(out, extra[i]) {
				t.Fatalf("configs/%s no longer contains %q: update the browser test", src, extra[i])
			}
			out = strings.ReplaceAll(out, extra[i], extra[i+1])
		}
		p := filepath.Join(dir, src)
		write(t, p, out)
		return p
	}
	building := rewrite("building-garden.yaml", "templates: templates", "templates: "+root+"/configs/templates")
	edge := rewrite("edge-gw-garden-1.yaml", "templates: configs/templates", "templates: "+root+"/configs/templates",
		".data/edge/gw-garden-1/queue.db", filepath.Join(dir, "queue.db"))

	// History: both projects from the last days of the previous month, as
	// the demo loads it (through the broker, as a gateway would).
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc).AddDate(0, 0, -4).Format("2006-01-02")
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, b := range []struct{ name, gw, cfg string }{
		{"garden", "gw-garden-1", building},
		{"tower", "gw-tower-1", filepath.Join(root, "configs/building-tower.yaml")},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bins+"/devsim", "backfill", "-config", b.cfg, "-state", filepath.Join(dir, "devsim-"+b.name+".json"),
				"-gateway", b.gw, "-company", "acme", "-project", b.name, "-from", from, "-to", time.Now().UTC().Add(-2*time.Minute).Format(time.RFC3339),
				"-broker", "tcp://"+broker, "-username", b.gw, "-password", "demo-"+b.gw+"-secret")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("backfill %s: %v\n%s", b.name, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	child(t, root, filepath.Join(dir, "edge.log"), bins+"/edge-agent", "-config", edge)
	waitHTTP(t, "http://"+ports["127.0.0.1:9102"]+"/healthz", 30*time.Second)
	child(t, root, filepath.Join(dir, "devsim.log"), bins+"/devsim", "-config", building, "-state", filepath.Join(dir, "devsim-garden.json"))
	waitHTTP(t, s.Control+"/devices", 30*time.Second)
	return s
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// apiGet reads an API route with a staff token.
func (s *system) apiGet(t testing.TB, token, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode
}

// chromium finds the browser: CHROMIUM, or Debian's chromium on the PATH.
// Missing, it fails the test (internal/testenv's one rule);
// PLANTROOM_SKIP_BROWSER=1 alone turns that into a skip.
func chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return testenv.LookPath(t, "PLANTROOM_SKIP_BROWSER", "chromium", "chromium")
}

// newBrowser starts a headless chromium with a fresh profile and returns a
// context for its first tab.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "zh-CN"), // the browser's own widgets (the month picker) in Chinese
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("cannot start chromium %s: %v", exe, err)
	}
	return ctx
}

// tab opens a tab in its own browser context (its own cookies).
func tab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}
