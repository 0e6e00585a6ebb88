package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Message catalogues, one file per language: locale/<tag>.json, a flat map
// from key to text (fmt verbs for arguments). zh-CN is the reference: every
// other catalogue must have exactly its keys (a test checks).
//
//go:embed locale/*.json
var catalogueFiles embed.FS

// Languages the console speaks, the default first.
var Languages = []string{"zh-CN", "en"}

// DefaultLanguage is what a visitor sees before choosing.
const DefaultLanguage = "zh-CN"

type catalogues map[string]map[string]string

func loadCatalogues() (catalogues, error) {
	out := catalogues{}
	for _, lang := range Languages {
		b, err := catalogueFiles.ReadFile("locale/" + lang + ".json")
		if err != nil {
			return nil, fmt.Errorf("cannot read catalogue %q: %w", lang, err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("cannot parse catalogue locale/%s.json: %w", lang, err)
		}
		out[lang] = m
	}
	return out, nil
}

// missing lists keys of the reference catalogue another one lacks, and keys
// it has that the reference does not.
func (c catalogues) missing() []string {
	var out []string
	ref := c[DefaultLanguage]
	for _, lang := range Languages[1:] {
		for k := range ref {
			if _, ok := c[lang][k]; !ok {
				out = append(out, lang+": missing "+k)
			}
		}
		for k := range c[lang] {
			if _, ok := ref[k]; !ok {
				out = append(out, lang+": unknown "+k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Locale formats text, numbers, money and times for one request: the
// viewer's language and, for times, the zone of the project shown.
type Locale struct {
	Lang string
	msgs map[string]string
	Zone *time.Location
}

func (c catalogues) locale(lang string, zone *time.Location) *Locale {
	if _, ok := c[lang]; !ok {
		lang = DefaultLanguage
	}
	if zone == nil {
		zone = time.Local
	}
	return &Locale{Lang: lang, msgs: c[lang], Zone: zone}
}

// In returns the locale with times shown in zone.
func (l *Locale) In(zone *time.Location) *Locale {
	if zone == nil {
		return l
	}
	c := *l
	c.Zone = zone
	return &c
}

// languageOf is the viewer's language: their choice (cookie), else the
// default. The browser's Accept-Language is not consulted: the console is
// Chinese first, and English is one click away.
func languageOf(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil {
		for _, l := range Languages {
			if c.Value == l {
				return l
			}
		}
	}
	return DefaultLanguage
}

// T is the text of key with args; a missing key shows itself, so it is seen
// (and a test fails) rather than hidden.
func (l *Locale) T(key string, args ...any) string {
	m, ok := l.msgs[key]
	if !ok {
		return "⟦" + key + "⟧"
	}
	if len(args) == 0 {
		return m
	}
	return fmt.Sprintf(m, args...)
}

// Num formats x with thousands separators and the given decimals.
func (l *Locale) Num(x float64, decimals int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	s := strconv.FormatFloat(math.Abs(x), 'f', decimals, 64)
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	if x < 0 && strings.Trim(s, "0.") != "" {
		b.WriteByte('-')
	}
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// NumP formats a nullable figure; null shows as a dash.
func (l *Locale) NumP(x *float64, decimals int) string {
	if x == nil {
		return "—"
	}
	return l.Num(*x, decimals)
}

// Money formats an amount of currency (ISO 4217 code) to the cent.
func (l *Locale) Money(x float64, currency string) string {
	sym := currency + " "
	if currency == "CNY" || currency == "" {
		sym = "¥"
		if l.Lang != "zh-CN" {
			sym = "CN¥"
		}
	}
	if x < 0 {
		return "-" + sym + l.Num(-x, 2)
	}
	return sym + l.Num(x, 2)
}

// MoneyP formats a nullable amount.
func (l *Locale) MoneyP(x *float64, currency string) string {
	if x == nil {
		return "—"
	}
	return l.Money(*x, currency)
}

// Pct formats a change in percent with its sign; null shows as a dash.
func (l *Locale) Pct(x *float64) string {
	if x == nil {
		return "—"
	}
	if *x > 0 {
		return "+" + l.Num(*x, 1) + "%"
	}
	return l.Num(*x, 1) + "%"
}

// Ratio formats a 0…1 ratio as a percentage.
func (l *Locale) Ratio(x float64) string { return l.Num(x*100, 1) + "%" }

// Time formats t in the locale's zone: date and minute.
func (l *Locale) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.In(l.Zone)
	if l.Lang == "zh-CN" {
		return t.Format("2006年1月2日 15:04")
	}
	return t.Format("2 Jan 2006 15:04")
}

// TimeP formats a nullable time.
func (l *Locale) TimeP(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return l.Time(*t)
}

// Clock formats t as time of day with seconds (live values).
func (l *Locale) Clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(l.Zone).Format("15:04:05")
}

// ISO is t in RFC 3339 for machines (datetime attributes, scripts).
func (l *Locale) ISO(t time.Time) string { return t.In(l.Zone).Format(time.RFC3339) }

// Month formats "YYYY-MM" for people.
func (l *Locale) Month(m string) string {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return m
	}
	if l.Lang == "zh-CN" {
		return t.Format("2006年1月")
	}
	return t.Format("Jan 2006")
}

// JS is the part of the catalogue the page scripts use (keys "js.…"),
// embedded in every page.
func (l *Locale) JS() map[string]string {
	out := map[string]string{}
	for k, v := range l.msgs {
		if strings.HasPrefix(k, "js.") {
			out[k] = v
		}
	}
	return out
}

// Val formats a measured value: whole numbers without decimals, others
// with up to two.
func (l *Locale) Val(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return l.Num(x, 0)
	}
	return strings.TrimRight(strings.TrimRight(l.Num(x, 2), "0"), ".")
}
