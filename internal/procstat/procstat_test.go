package procstat

import (
	"os"
	"runtime"
	"testing"
)

func TestOwnRSS(t *testing.T) {
	// Touch 64 MiB so the resident set is at least that.
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1
	}
	rss, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 64<<20 || rss > 64<<30 {
		t.Errorf("RSS %d bytes, want at least the 64 MiB just touched", rss)
	}
	runtime.KeepAlive(buf)
	if _, err := Status(os.Getpid(), "NoSuchKey"); err == nil {
		t.Error("an unknown key gave no error")
	}
}
