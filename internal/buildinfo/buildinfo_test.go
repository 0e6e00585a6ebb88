package buildinfo

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStampedValuesWin(t *testing.T) {
	defer func(v, c, d string) { Version, Commit, Date = v, c, d }(Version, Commit, Date)
	Version, Commit, Date = "1.2.3", "abc123", "2026-12-05T23:00:00Z"
	got := String("edge-agent")
	want := "edge-agent 1.2.3 (commit abc123, built 2026-12-05T23:00:00Z, "
	if !strings.HasPrefix(got, want) {
		t.Fatalf("String = %q, want prefix %q", got, want)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("edge-agent"))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP plantroom_build_info The binary's build stamp (version, commit, build date, Go version, platform); always 1.
# TYPE plantroom_build_info gauge
plantroom_build_info{commit="abc123",date="2026-12-05T23:00:00Z",goversion="`+Get().GoVersion+`",platform="`+Get().Platform+`",program="edge-agent",version="1.2.3"} 1
`), "plantroom_build_info"); err != nil {
		t.Fatal(err)
	}
}

func TestUnstampedNeverEmpty(t *testing.T) {
	defer func(c, d string) { Commit, Date = c, d }(Commit, Date)
	Commit, Date = "", ""
	in := Get()
	if in.Commit == "" || in.Date == "" || in.Version == "" {
		t.Fatalf("empty field in %+v", in)
	}
}
