package textfield

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	f := func(v string, max int, want string) {
		t.Helper()
		got := Check("note", v, max)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("Check(%q, %d) = %q, want %q", v, max, got, want)
		}
	}
	f("", 10, "")
	f("水泵漏水\n第二行\tTab", 20, "")
	f("水泵漏水水泵漏水水泵", 10, "")
	f("水泵漏水水泵漏水水泵漏", 10, "note: 11 characters, longer than the limit of 10")
	f("bell\a", 10, "control character U+0007 at byte 4")
	f("cr\r\n", 10, "U+000D")
	f("esc\x1b[31m", 20, "U+001B")
	f("del\x7f", 10, "U+007F")
	f("c1\u0085", 10, "U+0085")
	f("ls\u2028", 10, "U+2028")
	f("bad\xff", 10, "not valid UTF-8")
}
