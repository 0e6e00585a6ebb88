package resident

import (
	"fmt"
	"time"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/workorder"
)

// Monthly is HQ's statistics of resident requests for a month, one entry
// per project the viewer may report on.
type Monthly struct {
	Month    string         `json:"month"` // YYYY-MM, in each project's time zone
	Company  string         `json:"company"`
	Projects []ProjectStats `json:"projects"`
	Total    Totals         `json:"total"` // the projects together
}

// ProjectStats are one project's resident requests filed in the month.
type ProjectStats struct {
	Project string `json:"project"`
	Name    string `json:"name"`
	Totals
}

// Totals are the figures of a set of requests.
type Totals struct {
	Requests   int            `json:"requests"`
	ByCategory map[string]int `json:"by_category"`
	ByStatus   map[string]int `json:"by_status"` // the resident's words (StatusOf)
	Resolved   int            `json:"resolved"`
	// MeanTimeToRespondMin: from filing to a technician's acceptance, over
	// accepted requests; MeanTimeToResolveMin: to resolution, over resolved
	// ones. Minutes; null when none got that far.
	MeanTimeToRespondMin *float64 `json:"mean_time_to_respond_minutes"`
	MeanTimeToResolveMin *float64 `json:"mean_time_to_resolve_minutes"`
	// Rated requests, the mean of their ratings (null when none) and how
	// many got each rating 1…5 (index 0 is rating 1).
	Rated        int      `json:"rated"`
	Satisfaction *float64 `json:"satisfaction"`
	Ratings      [5]int   `json:"ratings"`

	respond, resolve time.Duration
	nRespond         int
	ratingSum        int
}

func newTotals() Totals {
	return Totals{ByCategory: map[string]int{}, ByStatus: map[string]int{}}
}

func (t *Totals) add(r *Request, w workorder.WorkOrder, found bool) {
	t.Requests++
	t.ByCategory[r.Category]++
	status := StatusSubmitted
	if found {
		status = StatusOf(w.State)
		if !w.AcceptedAt.IsZero() {
			t.respond += w.AcceptedAt.Sub(w.RaisedAt)
			t.nRespond++
		}
		if !w.ResolvedAt.IsZero() {
			t.resolve += w.ResolvedAt.Sub(w.RaisedAt)
			t.Resolved++
		}
	}
	t.ByStatus[status]++
	if r.Rating >= 1 && r.Rating <= 5 {
		t.Rated++
		t.ratingSum += r.Rating
		t.Ratings[r.Rating-1]++
	}
}

func (t *Totals) merge(o *Totals) {
	t.Requests += o.Requests
	for k, v := range o.ByCategory {
		t.ByCategory[k] += v
	}
	for k, v := range o.ByStatus {
		t.ByStatus[k] += v
	}
	t.Resolved += o.Resolved
	t.respond += o.respond
	t.resolve += o.resolve
	t.nRespond += o.nRespond
	t.Rated += o.Rated
	t.ratingSum += o.ratingSum
	for i := range t.Ratings {
		t.Ratings[i] += o.Ratings[i]
	}
}

func (t *Totals) finish() {
	mean := func(total time.Duration, n int) *float64 {
		if n == 0 {
			return nil
		}
		v := total.Minutes() / float64(n)
		return &v
	}
	t.MeanTimeToRespondMin = mean(t.respond, t.nRespond)
	t.MeanTimeToResolveMin = mean(t.resolve, t.Resolved)
	if t.Rated > 0 {
		v := float64(t.ratingSum) / float64(t.Rated)
		t.Satisfaction = &v
	}
}

// MonthlyStats computes the month's figures for every project of the
// viewer's company the viewer may report on (access.Report).
func (s *Service) MonthlyStats(v access.Principal, month string) (Monthly, error) {
	y, m, err := workorder.ParseMonth(month)
	if err != nil {
		return Monthly{}, fmt.Errorf("cannot compute resident statistics: %w", err)
	}
	out := Monthly{Month: month, Company: v.Company, Projects: []ProjectStats{}, Total: newTotals()}
	s.mu.Lock()
	reqs := make([]Request, 0, len(s.requests))
	for _, r := range s.requests {
		reqs = append(reqs, r.Request)
	}
	s.mu.Unlock()
	if c, ok := s.cfg.Org.FindCompany(v.Company); ok {
		for i := range c.Projects {
			p := &c.Projects[i]
			if !v.May(access.Report, access.ProjectOf(c.ID, p.ID)) {
				continue
			}
			from, to := p.Month(y, m)
			ps := ProjectStats{Project: p.ID, Name: p.Name, Totals: newTotals()}
			for i := range reqs {
				r := &reqs[i]
				if r.Company != c.ID || r.Project != p.ID || r.SubmittedAt.Before(from) || !r.SubmittedAt.Before(to) {
					continue
				}
				w, ok := s.cfg.Desk.Lookup(r.WorkOrder)
				ps.add(r, w, ok)
			}
			out.Total.merge(&ps.Totals)
			ps.finish()
			out.Projects = append(out.Projects, ps)
		}
	}
	out.Total.finish()
	return out, nil
}
