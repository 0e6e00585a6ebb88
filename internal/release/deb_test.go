package release

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/internal/testenv"
	"github.com/plantroom/plantroom/protocol"
)

// optOutDeb skips the package test on a machine without dpkg or root.
const optOutDeb = "PLANTROOM_SKIP_DEB"

// The package test installs plantroom-edge with dpkg into a scratch root
// (dpkg --root, maintainer scripts run chrootless with DPKG_ROOT set, as
// dpkg does for a system being bootstrapped), upgrades it over a locally
// modified configuration and a queue with readings in it, removes and
// purges it, and checks at every step what a Debian user expects.
func TestEdgePackageLifecycle(t *testing.T) {
	testenv.NeedRoot(t, optOutDeb, "installing a package with dpkg (file owners)")
	dpkg := testenv.LookPath(t, optOutDeb, "dpkg", "dpkg")
	testenv.LookPath(t, optOutDeb, "systemd-sysusers", "systemd")
	testenv.LookPath(t, optOutDeb, "deb-systemd-helper", "init-system-helpers")

	work := t.TempDir()
	repo := copyRepo(t, work)
	binary := filepath.Join(work, "edge-agent")
	// The host's default build settings, so that make test's own build of
	// edge-agent leaves every package cached; only the link differs.
	build := exec.Command("go", "build", "-o", binary, "-ldflags",
		"-X github.com/plantroom/plantroom/internal/buildinfo.Version=0.9.0 -X github.com/plantroom/plantroom/internal/buildinfo.Commit=testcommit",
		"github.com/plantroom/plantroom/edge/cmd/edge-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build edge-agent: %v\n%s", err, out)
	}

	pkg := func(version string) string {
		t.Helper()
		p := EdgePackage{Repo: repo, Binary: binary, GoArch: runtime.GOARCH, Version: version}
		path, err := p.WriteFile(work)
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	v1 := pkg("0.9.0")
	// Version 1.0.0 changes the example configuration and one template.
	appendFile(t, filepath.Join(repo, "edge/deploy/edge.example.yaml"), "# changed in 1.0.0\n")
	appendFile(t, filepath.Join(repo, "configs/templates/sdm630.yaml"), "# changed in 1.0.0\n")
	v2 := pkg("1.0.0")

	root := filepath.Join(work, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	for name, body := range map[string]string{
		"var/lib/dpkg/status": "", "var/lib/dpkg/available": "",
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
	} {
		must(t, os.WriteFile(filepath.Join(root, name), []byte(body), 0o644))
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(dpkg, append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null",
			"--force-confold"}, args...)...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	at := func(p string) string { return filepath.Join(root, p) }

	// Install.
	run("-i", v1)
	if got := status(t, root); got != "install ok installed 0.9.0" {
		t.Fatalf("after install: status %q", got)
	}
	uid, gid := lookupUser(t, root, "plantroom")
	if !strings.Contains(readFile(t, at("etc/group")), "dialout:x:") || !strings.Contains(readFile(t, at("etc/group")), ":plantroom") {
		t.Errorf("user plantroom is not in group dialout:\n%s", readFile(t, at("etc/group")))
	}
	checkFile(t, at("usr/bin/edge-agent"), 0o755, 0, 0)
	checkFile(t, at("usr/lib/systemd/system/plantroom-edge.service"), 0o644, 0, 0)
	checkFile(t, at("etc/plantroom/edge.example.yaml"), 0o644, 0, 0)
	checkFile(t, at("etc/plantroom/templates/sdm630.yaml"), 0o644, 0, 0)
	checkFile(t, at("etc/plantroom"), 0o750|os.ModeDir, 0, gid)
	checkFile(t, at("var/lib/plantroom-edge"), 0o700|os.ModeDir, uid, gid)
	if l, err := os.Readlink(at("etc/systemd/system/multi-user.target.wants/plantroom-edge.service")); err != nil ||
		l != "/usr/lib/systemd/system/plantroom-edge.service" {
		t.Errorf("the service is not enabled: %q, %v", l, err)
	}
	unit := readFile(t, at("usr/lib/systemd/system/plantroom-edge.service"))
	for _, want := range []string{"ConditionPathExists=/etc/plantroom/edge.yaml", "ExecStart=/usr/bin/edge-agent ",
		"User=plantroom", "ReadWritePaths=/var/lib/plantroom-edge"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the installed unit lacks %q", want)
		}
	}
	conffiles := readFile(t, at("var/lib/dpkg/info/plantroom-edge.conffiles"))
	for _, want := range []string{"/etc/plantroom/edge.example.yaml\n", "/etc/plantroom/templates/sdm630.yaml\n"} {
		if !strings.Contains(conffiles, want) {
			t.Errorf("conffiles lacks %q:\n%s", want, conffiles)
		}
	}

	// The installed binary runs and checks the example configuration as an
	// installer would write it (paths moved into the scratch root).
	agent := at("usr/bin/edge-agent")
	if out, err := exec.Command(agent, "-version").CombinedOutput(); err != nil ||
		!strings.HasPrefix(string(out), "edge-agent 0.9.0 (commit testcommit, ") {
		t.Errorf("edge-agent -version: %v\n%s", err, out)
	}
	example := readFile(t, at("etc/plantroom/edge.example.yaml"))
	cfg := strings.NewReplacer("/etc/plantroom", at("etc/plantroom"), "/var/lib/plantroom-edge", at("var/lib/plantroom-edge")).Replace(example)
	must(t, os.WriteFile(at("etc/plantroom/edge.yaml"), []byte(cfg), 0o640))
	must(t, os.WriteFile(at("etc/plantroom/gateway.secret"), []byte("s3cret\n"), 0o640))
	out, err := exec.Command(agent, "-config", at("etc/plantroom/edge.yaml"), "-check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration is valid (1 devices)") {
		t.Fatalf("edge-agent -check from the installed path: %v\n%s", err, out)
	}

	// The administrator edits the example, and the queue holds readings.
	appendFile(t, at("etc/plantroom/edge.example.yaml"), "# local note\n")
	localExample := readFile(t, at("etc/plantroom/edge.example.yaml"))
	qpath := at("var/lib/plantroom-edge/queue.db")
	fillQueue(t, qpath, 500)
	must(t, os.Chown(qpath, uid, gid))
	qsum := sum(t, qpath)

	// Upgrade.
	run("-i", v2)
	if got := status(t, root); got != "install ok installed 1.0.0" {
		t.Fatalf("after upgrade: status %q", got)
	}
	if got := readFile(t, at("etc/plantroom/edge.example.yaml")); got != localExample {
		t.Errorf("upgrade replaced the locally modified conffile")
	}
	if got := readFile(t, at("etc/plantroom/edge.example.yaml.dpkg-dist")); !strings.HasSuffix(got, "# changed in 1.0.0\n") {
		t.Errorf("upgrade did not leave the new example beside it as .dpkg-dist: %q", got)
	}
	if got := readFile(t, at("etc/plantroom/templates/sdm630.yaml")); !strings.HasSuffix(got, "# changed in 1.0.0\n") {
		t.Errorf("upgrade did not update the unmodified template")
	}
	if readFile(t, at("etc/plantroom/edge.yaml")) != cfg {
		t.Errorf("upgrade touched /etc/plantroom/edge.yaml")
	}
	checkFile(t, at("etc/plantroom/edge.yaml"), 0o640, 0, gid) // postinst gives it the agent's group
	checkFile(t, qpath, 0o600, uid, gid)
	if sum(t, qpath) != qsum {
		t.Errorf("upgrade changed the queue file")
	}
	if n := queueReadings(t, qpath); n != 500 {
		t.Errorf("after upgrade the queue holds %d readings, want 500", n)
	}
	if out, err := exec.Command(agent, "-config", at("etc/plantroom/edge.yaml"), "-check").CombinedOutput(); err != nil {
		t.Errorf("edge-agent -check after upgrade: %v\n%s", err, out)
	}

	// Remove: the program goes, configuration and data stay.
	run("-r", "plantroom-edge")
	if got := status(t, root); got != "deinstall ok config-files 1.0.0" {
		t.Fatalf("after remove: status %q", got)
	}
	for _, gone := range []string{"usr/bin/edge-agent", "usr/lib/systemd/system/plantroom-edge.service"} {
		if _, err := os.Lstat(at(gone)); !os.IsNotExist(err) {
			t.Errorf("after remove %s is still there (%v)", gone, err)
		}
	}
	for _, kept := range []string{"etc/plantroom/edge.yaml", "etc/plantroom/gateway.secret", "etc/plantroom/edge.example.yaml",
		"etc/plantroom/templates/sdm630.yaml"} {
		if _, err := os.Stat(at(kept)); err != nil {
			t.Errorf("remove deleted %s: %v", kept, err)
		}
	}
	if n := queueReadings(t, qpath); n != 500 {
		t.Errorf("after remove the queue holds %d readings, want 500", n)
	}

	// Purge: configuration and data go; the system user stays.
	run("-P", "plantroom-edge")
	for _, gone := range []string{"etc/plantroom", "var/lib/plantroom-edge",
		"etc/systemd/system/multi-user.target.wants/plantroom-edge.service"} {
		if _, err := os.Lstat(at(gone)); !os.IsNotExist(err) {
			t.Errorf("after purge %s is still there (%v)", gone, err)
		}
	}
	if got := status(t, root); got != "" {
		t.Errorf("after purge dpkg still lists the package: %q", got)
	}
	lookupUser(t, root, "plantroom")
}

// copyRepo copies what the package is built from, so the test can change it
// for a second version.
func copyRepo(t *testing.T, work string) string {
	t.Helper()
	src, err := filepath.Abs("../..")
	must(t, err)
	dst := filepath.Join(work, "repo")
	for _, p := range []string{"LICENSE", "edge/deploy", "configs/templates"} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, p)), 0o755))
		if out, err := exec.Command("cp", "-a", filepath.Join(src, p), filepath.Join(dst, p)).CombinedOutput(); err != nil {
			t.Fatalf("cannot copy %s: %v\n%s", p, err, out)
		}
	}
	return dst
}

func fillQueue(t *testing.T, path string, n int) {
	t.Helper()
	q, err := queue.New(queue.Config{Path: path, Gateway: "gw-example-1", CommitInterval: time.Millisecond}, nil)
	must(t, err)
	must(t, q.Start(context.Background()))
	rs := make([]protocol.Reading, n)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := range rs {
		rs[i] = protocol.Reading{Device: "example-meter-main", Metric: "energy_import_kwh", TS: base + int64(i)*10000, Value: float64(i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, q.Append(ctx, rs))
	q.Stop()
}

func queueReadings(t *testing.T, path string) int64 {
	t.Helper()
	q, err := queue.New(queue.Config{Path: path, Gateway: "gw-example-1"}, nil)
	must(t, err)
	must(t, q.Start(context.Background()))
	defer q.Stop()
	return q.Stats().Readings
}

// status is dpkg's "Status: … Version" of plantroom-edge in the scratch
// root, "" when it does not know the package.
func status(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"),
		"-W", "-f=${Status} ${Version}", "plantroom-edge").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

func lookupUser(t *testing.T, root, name string) (uid, gid int) {
	t.Helper()
	for _, line := range strings.Split(readFile(t, filepath.Join(root, "etc/passwd")), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			if f[5] != "/var/lib/plantroom-edge" || f[6] != "/usr/sbin/nologin" || uid == 0 || uid >= 1000 {
				t.Errorf("user %s is not a system user with home /var/lib/plantroom-edge and no shell: %q", name, line)
			}
			return uid, gid
		}
	}
	t.Fatalf("no user %s in the scratch root's passwd", name)
	return 0, 0
}

func checkFile(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode() != mode || int(sys.Uid) != uid || int(sys.Gid) != gid {
		t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", path, st.Mode(), sys.Uid, sys.Gid, mode, uid, gid)
	}
}

func sum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%v", err)
	}
	return string(b)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(s)
	must(t, err)
	must(t, f.Close())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
