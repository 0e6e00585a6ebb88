package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file with several bad values reports all of them, each with its line,
// not only the first one the decoder met.
func TestLoadReportsEveryBadValue(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "configs", "edge-gw-garden-1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for old, bad := range map[string]string{
		"max_bytes: 256MiB":     "max_bytes: 256M",
		"keepalive: 30s":        "keepalive: 30",
		"heartbeat: 5m":         "heartbeat: five minutes",
		"commit_interval: 50ms": "commit_interval: [50ms]",
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("the demo config no longer has %q", old)
		}
		s = strings.Replace(s, old, bad, 1)
	}
	path := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if err == nil {
		t.Fatal("Load accepted four bad values")
	}
	msg := err.Error()
	for _, want := range []string{
		`invalid size "256M"`,
		`invalid duration "30"`,
		`invalid duration "five minutes"`,
		`duration must be a string`,
		path,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "line "); n != 4 {
		t.Errorf("error names %d lines, want 4:\n%s", n, msg)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"268435456": 268435456, "256MiB": 256 << 20, "1GiB": 1 << 30, "500MB": 500e6,
		"64KiB": 64 << 10, "1.5 MiB": 3 << 19, "0": 0, "10B": 10,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "256M", "-1MiB", "lots", "1TB", "2000000GiB"} {
		if v, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, v)
		}
	}
}

// A max_bytes the disk cannot hold beside min_free is not an error, but
// -check and the start say how much the queue will hold.
func TestQueueRoomNote(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Queue: QueueConfig{Path: filepath.Join(dir, "not", "yet", "queue.db"), MaxBytes: 1 << 20, MinFree: 1 << 20}}
	if note := QueueRoomNote(cfg); note != "" {
		t.Errorf("2 MiB needed, and a note: %s", note)
	}
	cfg.Queue.MaxBytes = 1 << 50 // a petabyte: no test machine has it
	note := QueueRoomNote(cfg)
	if !strings.Contains(note, "queue.max_bytes (1073741824.0MiB) does not fit on the disk of "+dir) || !strings.Contains(note, "will hold at most about") {
		t.Errorf("note for a petabyte bound: %q", note)
	}
}
