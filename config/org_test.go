package config

import (
	"testing"
	"time"
)

func TestProjectMonthInItsZone(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	p := &Project{Location: sh}
	from, to := p.Month(2026, time.December)
	if want := time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC); !from.Equal(want) {
		t.Errorf("from %v, want %v", from.UTC(), want)
	}
	if want := time.Date(2026, 12, 31, 16, 0, 0, 0, time.UTC); !to.Equal(want) {
		t.Errorf("to %v, want %v", to.UTC(), want)
	}
	from, to = (&Project{}).Month(2027, time.February)
	if from != time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC) || to != time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("without a zone: %v to %v, want February 2027 in UTC", from, to)
	}
}

func TestFindCompany(t *testing.T) {
	o := &Org{Companies: []Company{{ID: "acme"}, {ID: "beta"}}}
	if c, ok := o.FindCompany("beta"); !ok || c != &o.Companies[1] {
		t.Errorf("FindCompany(beta) = %v, %v, want the second company", c, ok)
	}
	if c, ok := o.FindCompany("gamma"); ok || c != nil {
		t.Errorf("FindCompany(gamma) = %v, %v, want none", c, ok)
	}
}
