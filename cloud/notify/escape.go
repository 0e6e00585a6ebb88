package notify

import "strings"

// markdownEscaper backslash-escapes what the robots' markdown reads as
// markup (emphasis, code, links, images, headings, tables, HTML tags), and
// turns line breaks into spaces: the lines of a message (its "> field:"
// lines) belong to the message, never to a value inside it.
var markdownEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`, `(`, `\(`, `)`, `\)`,
	`<`, `\<`, `>`, `\>`, `~`, `\~`, `|`, `\|`, `!`, `\!`, `#`, `\#`,
	"\r\n", " ", "\n", " ", "\r", " ", "\t", " ", "\u2028", " ", "\u2029", " ",
)

// Markdown makes user-supplied text (a work order's title, a note, a
// name) safe inside a markdown message: it reads as the text it is, on the
// line it was put on.
func Markdown(s string) string { return markdownEscaper.Replace(s) }

// lineEscaper keeps a plain-text value on one line.
var lineEscaper = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ", "\u2028", " ", "\u2029", " ")

// Line makes user-supplied text safe in a plain one-line field (a
// message's title, which robots show as the notification's preview).
func Line(s string) string { return lineEscaper.Replace(s) }
