package protocol

import (
	"fmt"
	"unicode/utf8"
)

// MaxIDLen is the longest company, project, gateway, device or metric id.
const MaxIDLen = 64

// CheckID reports whether s is a valid company, project, gateway or device id:
// 1 to 64 characters from A–Z, a–z, 0–9, '-' and '_'. Ids appear in MQTT topic
// levels, so '/', '+', '#', '$' and spaces are never allowed.
func CheckID(s string) error {
	if len(s) == 0 {
		return fmt.Errorf("%w: empty", ErrID)
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrID, s, MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i]) {
			return fmt.Errorf("%w: %q has %q at offset %d (allowed: A-Z a-z 0-9 - _)", ErrID, s, charAt(s, i), i)
		}
	}
	return nil
}

// CheckMetric reports whether s is a valid metric name: 1 to 64 characters
// from a–z, 0–9, '_' and '.', starting with a letter (e.g. "energy_import_kwh",
// "phase1.voltage").
func CheckMetric(s string) error {
	if len(s) == 0 {
		return fmt.Errorf("%w: empty", ErrMetric)
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrMetric, s, MaxIDLen)
	}
	if s[0] < 'a' || s[0] > 'z' {
		return fmt.Errorf("%w: %q must start with a lower-case letter", ErrMetric, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return fmt.Errorf("%w: %q has %q at offset %d (allowed: a-z 0-9 _ .)", ErrMetric, s, charAt(s, i), i)
		}
	}
	return nil
}

// charAt is the character at byte offset i of s, so an error names '水'
// rather than its first byte.
func charAt(s string, i int) rune {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return r
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
