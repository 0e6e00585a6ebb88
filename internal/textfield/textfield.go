// Package textfield is the one rule for free text a client sends (titles,
// descriptions, notes, skills, references): a maximum length per kind of
// field, valid UTF-8, and no control characters other than newline and tab.
// docs/api.md lists the fields and their limits.
package textfield

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Maximum lengths in characters.
const (
	MaxTitle = 200  // a work order's title
	MaxLabel = 64   // a short label: a skill
	MaxText  = 4000 // descriptions and notes
	MaxRef   = 1000 // a reference: a photo's URL or storage key
)

// Check returns the problem of v as the value of field (at most max
// characters), or "" when v is acceptable.
func Check(field, v string, max int) string {
	if !utf8.ValidString(v) {
		return fmt.Sprintf("%s: not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fmt.Sprintf("%s: %d characters, longer than the limit of %d", field, n, max)
	}
	for i, r := range v {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') {
			return fmt.Sprintf("%s: control character %U at byte %d (only newline and tab are allowed)", field, r, i)
		}
	}
	return ""
}
