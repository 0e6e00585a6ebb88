package config

import (
	"fmt"
	"strings"
	"time"
)

// Staff is a person using the API.
type Staff struct {
	ID        string   `yaml:"id"`
	Name      string   `yaml:"name"`
	Company   string   `yaml:"company"`
	Role      string   `yaml:"role"`
	Projects  []string `yaml:"projects"` // for project_manager and technician
	Skills    []string `yaml:"skills"`
	OnDuty    []Shift  `yaml:"on_duty"`
	TokenHash string   `yaml:"token_hash"` // "sha256:<hex>" of the API token
	// PasswordHash is the bcrypt hash ("$2a$…") of the console password;
	// empty: this staff member cannot sign in to the console (the API token
	// still works). Make one with `bin/cloud hash-password`.
	PasswordHash string `yaml:"password_hash"`
}

// Shift is a weekly on-duty window in the project's time zone. To before From
// means the shift runs past midnight.
type Shift struct {
	Days []string `yaml:"days"` // mon … sun
	From string   `yaml:"from"` // "08:00"
	To   string   `yaml:"to"`   // "20:00"
}

func checkTokenHash(h string) error {
	hex, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("must be \"sha256:\" and 64 lower-case hex digits; make one with `bin/cloud hash-token`")
	}
	return nil
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseClock parses "HH:MM" (00:00 … 24:00) into minutes after midnight.
func ParseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("invalid time of day %q (want HH:MM)", s)
	}
	digit := func(c byte) bool { return c >= '0' && c <= '9' }
	if !digit(s[0]) || !digit(s[1]) || !digit(s[3]) || !digit(s[4]) {
		return 0, fmt.Errorf("invalid time of day %q (want HH:MM from 00:00 to 24:00)", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("invalid time of day %q (want HH:MM from 00:00 to 24:00)", s)
	}
	return h*60 + m, nil
}

// OnDutyAt reports whether the shift covers t (already in the project's zone).
func (s Shift) OnDutyAt(t time.Time) bool {
	from, err1 := ParseClock(s.From)
	to, err2 := ParseClock(s.To)
	if err1 != nil || err2 != nil {
		return false
	}
	min := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	has := func(d time.Weekday) bool {
		for _, n := range s.Days {
			if weekdays[n] == d {
				return true
			}
		}
		return false
	}
	if from < to {
		return has(day) && min >= from && min < to
	}
	// Overnight: the evening part belongs to the listed day, the morning part to the next.
	return (has(day) && min >= from) || (has((day+6)%7) && min < to)
}
