// Package resident takes residents' repair requests (报修): each project has
// a public request link (an unguessable token the project manager can
// rotate); a request filed through it becomes a work order through the
// work-order desk (source "resident", dispatched like any other), and the
// resident gets a private tracking token that shows the order's state in
// plain words and, once resolved, takes one 1–5 satisfaction rating with
// an optional comment.
//
// Requests and links are append-only event logs in ClickHouse
// (store.EventLog: resident_requests, resident_links), rebuilt into memory
// at start like the desk's orders. The resident's phone number is kept
// with the request, never in the work order; staff see it masked except
// where access.Contact allows the whole number (the project's manager, the
// assigned technician). Abuse limits: requests per client address and per
// project within a window, a honeypot field, text limits (package
// textfield), and the API's body limit. Package residenthttp serves all of
// it; this package knows nothing of HTTP.
package resident

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/textfield"
)

// Categories a resident chooses from, each a device kind of the work
// order (and the technician skill wanted, "" for other).
var Categories = []string{config.KindElevator, config.KindPump, config.KindLighting, config.KindOther}

// Limits of a request's fields, in characters.
const (
	MaxLocation    = textfield.MaxLabel // "3 号楼 2 单元 1502"
	MaxDescription = 1000
	MaxComment     = 500
	MaxPhone       = 20
	// MaxPhotos is the most photos a request may carry.
	MaxPhotos = 3
)

// PhotoSaver keeps a resident's photos (*photo.Photos is one): it checks
// the content, removes EXIF and GPS, and stores the picture.
type PhotoSaver interface {
	Save(ctx context.Context, r io.Reader) (photo.Photo, error)
	Open(ctx context.Context, id string, size photo.Size) (io.ReadCloser, string, error)
	MaxBytes() int64
}

// Errors of the service. The HTTP layer maps them to statuses.
var (
	// ErrNotFound: no such link (or a rotated one), tracking token or request.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a field is missing or breaks a limit.
	ErrInvalid = errors.New("invalid request")
	// ErrRefused: the honeypot field was filled in.
	ErrRefused = errors.New("request refused")
	// ErrConflict: rating twice, or before the work is resolved.
	ErrConflict = errors.New("conflict")
	// ErrNotVisible and ErrForbidden: access's answers for staff.
	ErrNotVisible = access.ErrNotVisible
)

// LimitError is a request over a rate limit; RetryAfter says when the
// next one is taken.
type LimitError struct {
	Scope      string // "address" or "project"
	Limit      int
	Window     time.Duration
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("cannot take the request: more than %d requests from this %s within %s; try again in %s",
		e.Limit, e.Scope, e.Window, e.RetryAfter.Round(time.Second))
}

// Desk is what the service needs of the work-order desk.
type Desk interface {
	CreateForResident(ctx context.Context, project string, r workorder.NewOrder) (workorder.WorkOrder, error)
	Lookup(id string) (workorder.WorkOrder, bool)
	OpeningPhotos(id string) []photo.Photo
}

// Log stores requests and links (ClickHouseLog).
type Log interface {
	AppendRequestEvents(ctx context.Context, evs []Event) error
	LoadRequestEvents(ctx context.Context) ([]Event, error)
	AppendLinkEvents(ctx context.Context, evs []LinkEvent) error
	LoadLinkEvents(ctx context.Context) ([]LinkEvent, error)
}

// Limits bound how many requests are taken. Zero fields take defaults.
type Limits struct {
	PerAddress int             `yaml:"per_address"` // from one client address per window (default 5)
	PerProject int             `yaml:"per_project"` // into one project per window (default 60)
	Window     config.Duration `yaml:"window"`      // default 1h
}

func (l Limits) withDefaults() Limits {
	if l.PerAddress == 0 {
		l.PerAddress = 5
	}
	if l.PerProject == 0 {
		l.PerProject = 60
	}
	if l.Window.Duration == 0 {
		l.Window.Duration = time.Hour
	}
	return l
}

// Validate reports every problem of l under path.
func (l Limits) Validate(p *config.Problems, path string) {
	if l.PerAddress < 0 {
		p.Addf(config.Join(path, "per_address"), "must be >= 1, got %d", l.PerAddress)
	}
	if l.PerProject < 0 {
		p.Addf(config.Join(path, "per_project"), "must be >= 1, got %d", l.PerProject)
	}
	if l.Window.Duration < 0 {
		p.Addf(config.Join(path, "window"), "must be > 0, got %s", l.Window)
	}
}

// Config configures a Service. Org, Desk and Log are required.
type Config struct {
	Org    *config.Org
	Desk   Desk
	Log    Log
	Limits Limits
	// Photos keeps the photos residents attach; nil: requests take none.
	Photos PhotoSaver
	Logger *slog.Logger
	Now    func() time.Time
	// RetryInterval is how often requests whose storage failed are stored
	// again (default 5s).
	RetryInterval time.Duration
}

// Request is a resident's repair request as staff see it.
type Request struct {
	ID          string    `json:"id"`
	Company     string    `json:"company"`
	Project     string    `json:"project"`
	WorkOrder   string    `json:"work_order"`
	State       string    `json:"state"` // the work order's state
	Category    string    `json:"category"`
	Location    string    `json:"location"`
	Description string    `json:"description"`
	Phone       string    `json:"phone"`        // masked unless the viewer may contact the resident
	PhoneMasked bool      `json:"phone_masked"` // whether Phone is masked
	SubmittedAt time.Time `json:"submitted_at"`
	Rating      int       `json:"rating,omitempty"` // 1–5; 0: not rated
	Comment     string    `json:"comment,omitempty"`
	RatedAt     time.Time `json:"rated_at,omitzero"`
}

// request is the stored request.
type request struct {
	Request
	tokenHash string
	n         uint32
}

// Submission is what a resident files.
type Submission struct {
	Category    string `json:"category"`
	Location    string `json:"location"`
	Description string `json:"description"`
	Phone       string `json:"phone,omitempty"`
	// Website is the honeypot: a field people do not see and bots fill in.
	Website string `json:"website,omitempty"`
	// Photos are the pictures attached (at most MaxPhotos), read once the
	// fields and the rate limits have passed; the HTTP layer fills them
	// from a multipart body.
	Photos []io.Reader `json:"-"`
}

// Receipt is the answer to a submission: the private tracking token.
type Receipt struct {
	Token  string `json:"token"`
	Status string `json:"status"`
}

// Statuses a resident sees, in plain words on the tracking page.
const (
	StatusSubmitted  = "submitted"   // open: waiting for someone
	StatusAssigned   = "assigned"    // a technician has it (assigned or accepted)
	StatusInProgress = "in_progress" // being worked on
	StatusResolved   = "resolved"    // resolved or closed
	StatusCancelled  = "cancelled"
)

// StatusOf is the resident's word for a work-order state.
func StatusOf(state string) string {
	switch state {
	case workorder.StateOpen:
		return StatusSubmitted
	case workorder.StateAssigned, workorder.StateAccepted:
		return StatusAssigned
	case workorder.StateInProgress:
		return StatusInProgress
	case workorder.StateResolved, workorder.StateClosed:
		return StatusResolved
	}
	return StatusCancelled
}

// Tracking is what the tracking token shows the resident.
type Tracking struct {
	Project     string    `json:"project"`
	ProjectName string    `json:"project_name"`
	Category    string    `json:"category"`
	Location    string    `json:"location"`
	Description string    `json:"description"`
	Phone       string    `json:"phone,omitempty"` // masked
	Status      string    `json:"status"`
	SubmittedAt time.Time `json:"submitted_at"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
	CanRate     bool      `json:"can_rate"`
	Rating      int       `json:"rating,omitempty"`
	Comment     string    `json:"comment,omitempty"`
	// Photos are the ids of the photos the resident attached.
	Photos []string `json:"photos,omitempty"`
}

// Link is a project's public request link.
type Link struct {
	Project   string    `json:"project"`
	Token     string    `json:"token"`
	Path      string    `json:"path"` // the form's path on the console: /r/{token}
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// FormPath is the console path of the public form of a link token.
func FormPath(token string) string { return "/r/" + token }

// TrackPath is the console path of a tracking token's page.
func TrackPath(token string) string { return "/t/" + token }

// Service keeps the requests and links. New → Start → Stop.
type Service struct {
	cfg    Config
	limits Limits
	log    *slog.Logger
	rate   *limiter

	mu       sync.Mutex
	requests map[string]*request // by id
	byToken  map[string]*request // by tracking token hash
	byOrder  map[string]*request // by work order id
	links    map[string]*LinkEvent
	byLink   map[string]string // link token → project
	outbox   *store.Outbox[Event]

	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New checks the configuration.
func New(cfg Config) (*Service, error) {
	var p config.Problems
	for name, missing := range map[string]bool{"Org": cfg.Org == nil, "Desk": cfg.Desk == nil, "Log": cfg.Log == nil} {
		if missing {
			p.Addf(name, "required")
		}
	}
	cfg.Limits.Validate(&p, "Limits")
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("cannot create the resident request service: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 5 * time.Second
	}
	s := &Service{cfg: cfg, limits: cfg.Limits.withDefaults(), log: cfg.Logger,
		requests: map[string]*request{}, byToken: map[string]*request{}, byOrder: map[string]*request{},
		links: map[string]*LinkEvent{}, byLink: map[string]string{}}
	s.rate = newLimiter(s.limits, cfg.Now)
	s.outbox = store.NewOutbox("resident request events", cfg.Log.AppendRequestEvents, cfg.RetryInterval, cfg.Logger)
	return s, nil
}

// Start loads requests and links, and gives every project without a link
// its first one.
func (s *Service) Start(ctx context.Context) error {
	evs, err := s.cfg.Log.LoadRequestEvents(ctx)
	if err != nil {
		return fmt.Errorf("cannot start the resident request service: %w", err)
	}
	links, err := s.cfg.Log.LoadLinkEvents(ctx)
	if err != nil {
		return fmt.Errorf("cannot start the resident request service: %w", err)
	}
	s.mu.Lock()
	for _, ev := range evs {
		s.apply(ev)
	}
	for i := range links {
		s.applyLink(&links[i])
	}
	var fresh []LinkEvent
	for _, c := range s.cfg.Org.Companies {
		for _, p := range c.Projects {
			if s.links[p.ID] == nil {
				fresh = append(fresh, s.newLink(c.ID, p.ID, workorder.System))
			}
		}
	}
	s.mu.Unlock()
	if len(fresh) > 0 {
		if err := s.cfg.Log.AppendLinkEvents(ctx, fresh); err != nil {
			return fmt.Errorf("cannot start the resident request service: %w", err)
		}
		s.mu.Lock()
		for i := range fresh {
			s.applyLink(&fresh[i])
		}
		s.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(1)
	go s.loop(ctx)
	return nil
}

// Stop ends the retries and makes a last attempt to store waiting events.
func (s *Service) Stop() {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
			s.wg.Wait()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.outbox.Close(10 * time.Second)
	})
}

func (s *Service) loop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		s.outbox.Retry(ctx, s.cfg.Now())
		s.mu.Unlock()
	}
}

// randomToken returns n random bytes, URL-safe.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// newLink makes the next link event of a project. s.mu must be held.
func (s *Service) newLink(company, project, who string) LinkEvent {
	var n uint32 = 1
	if cur := s.links[project]; cur != nil {
		n = cur.N + 1
	}
	return LinkEvent{Company: company, Project: project, N: n, Token: randomToken(12), Who: who, At: s.cfg.Now().UTC()}
}

// applyLink makes ev the project's link if it is newer. s.mu must be held.
func (s *Service) applyLink(ev *LinkEvent) {
	cur := s.links[ev.Project]
	if cur != nil && cur.N >= ev.N {
		return
	}
	if cur != nil {
		delete(s.byLink, cur.Token)
	}
	e := *ev
	s.links[ev.Project] = &e
	s.byLink[e.Token] = ev.Project
}

// apply replays a request event. s.mu must be held.
func (s *Service) apply(ev Event) {
	r := s.requests[ev.ID]
	if r != nil && ev.N <= r.n {
		return
	}
	if r == nil {
		r = &request{}
		s.requests[ev.ID] = r
	}
	r.Request = ev.Request
	r.Phone = ev.Phone
	r.tokenHash, r.n = ev.TokenHash, ev.N
	s.byToken[r.tokenHash] = r
	s.byOrder[r.WorkOrder] = r
}

// FindLink returns the project a public link token opens; ErrNotFound for
// an unknown or rotated one.
func (s *Service) FindLink(token string) (*config.Company, *config.Project, error) {
	s.mu.Lock()
	project, ok := s.byLink[token]
	s.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("cannot find request link: %w", ErrNotFound)
	}
	co, p, ok := s.cfg.Org.FindProject(project)
	if !ok {
		return nil, nil, fmt.Errorf("cannot find request link: project %q: %w", project, ErrNotFound)
	}
	return co, p, nil
}

// Link returns a project's current link.
func (s *Service) Link(project string) (Link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[project]
	if l == nil {
		return Link{}, fmt.Errorf("cannot find the request link of project %q: %w", project, ErrNotFound)
	}
	return l.link(), nil
}

func (l *LinkEvent) link() Link {
	return Link{Project: l.Project, Token: l.Token, Path: FormPath(l.Token), CreatedAt: l.At, CreatedBy: l.Who}
}

// Rotate gives a project a new link; the old one stops working at once.
func (s *Service) Rotate(ctx context.Context, company, project, who string) (Link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.newLink(company, project, who)
	if err := s.cfg.Log.AppendLinkEvents(ctx, []LinkEvent{ev}); err != nil {
		return Link{}, fmt.Errorf("cannot rotate the request link of project %q: %w", project, err)
	}
	s.applyLink(&ev)
	s.log.Info("resident request link rotated", "project", project, "by", who)
	return ev.link(), nil
}

// Photos is the store residents' photos go to; nil when none is configured.
func (s *Service) Photos() PhotoSaver { return s.cfg.Photos }

// Submit files a request through a public link from a client address:
// the rate limits, the honeypot and the fields are checked, the photos
// saved (checked, metadata removed), the work order opened with them on
// its opening and dispatched, and the tracking token returned.
func (s *Service) Submit(ctx context.Context, linkToken, addr string, sub Submission) (Receipt, error) {
	co, p, err := s.FindLink(linkToken)
	if err != nil {
		return Receipt{}, err
	}
	if strings.TrimSpace(sub.Website) != "" {
		s.log.Info("resident request refused: honeypot filled", "project", p.ID, "addr", addr)
		return Receipt{}, fmt.Errorf("cannot take the request: %w", ErrRefused)
	}
	sub.Location, sub.Description, sub.Phone = strings.TrimSpace(sub.Location), strings.TrimSpace(sub.Description), strings.TrimSpace(sub.Phone)
	if len(sub.Photos) > 0 && s.cfg.Photos == nil {
		return Receipt{}, fmt.Errorf("cannot take the request: photos: this server keeps no photos: %w", ErrInvalid)
	}
	if err := sub.check(); err != nil {
		return Receipt{}, err
	}
	if le := s.rate.take(addr, p.ID); le != nil {
		s.log.Info("resident request refused: rate limit", "project", p.ID, "addr", addr, "limit", le.Scope)
		return Receipt{}, le
	}
	var ids []string
	for i, r := range sub.Photos {
		ph, err := s.cfg.Photos.Save(ctx, r)
		if err != nil {
			return Receipt{}, fmt.Errorf("cannot take photo %d of %d: %w", i+1, len(sub.Photos), err)
		}
		ids = append(ids, ph.ID)
	}
	skill := sub.Category
	if skill == config.KindOther {
		skill = ""
	}
	w, err := s.cfg.Desk.CreateForResident(ctx, p.ID, workorder.NewOrder{
		Project: p.ID, Category: sub.Category, Skill: skill, Photos: ids,
		Title:       orderTitle(sub.Location, sub.Description),
		Description: sub.Description + "\n\n位置 location: " + sub.Location,
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("cannot take the request: %w", err)
	}
	token := randomToken(16)
	now := s.cfg.Now().UTC()
	ev := Event{Action: ActionSubmit, At: now, N: 1, TokenHash: hashToken(token), Request: Request{
		ID: "rq-" + randomToken(9), Company: co.ID, Project: p.ID, WorkOrder: w.ID, Category: sub.Category,
		Location: sub.Location, Description: sub.Description, Phone: sub.Phone, SubmittedAt: now,
	}}
	s.mu.Lock()
	s.apply(ev)
	s.outbox.Add(ctx, []Event{ev})
	s.mu.Unlock()
	return Receipt{Token: token, Status: StatusOf(w.State)}, nil
}

// orderTitle is the work order's title: the location and the first line
// of the description, within the title limit. The phone is never in it.
func orderTitle(location, description string) string {
	first, _, _ := strings.Cut(description, "\n")
	t := "报修 " + location + ": " + strings.TrimSpace(first)
	if utf8.RuneCountInString(t) > 80 {
		t = string([]rune(t)[:79]) + "…"
	}
	return t
}

func (sub *Submission) check() error {
	var probs []string
	if !slices.Contains(Categories, sub.Category) {
		probs = append(probs, fmt.Sprintf("category: unknown category %q (want one of %s)", sub.Category, strings.Join(Categories, ", ")))
	}
	if sub.Location == "" {
		probs = append(probs, "location: required")
	}
	if sub.Description == "" {
		probs = append(probs, "description: required")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"location", sub.Location, MaxLocation}, {"description", sub.Description, MaxDescription}, {"phone", sub.Phone, MaxPhone}} {
		if p := textfield.Check(f.name, f.v, f.max); p != "" {
			probs = append(probs, p)
		}
	}
	if len(sub.Photos) > MaxPhotos {
		probs = append(probs, fmt.Sprintf("photos: %d photos, at most %d", len(sub.Photos), MaxPhotos))
	}
	if sub.Phone != "" && !validPhone(sub.Phone) {
		probs = append(probs, fmt.Sprintf("phone: %q is not a phone number (digits, spaces, +, -)", sub.Phone))
	}
	if len(probs) > 0 {
		return fmt.Errorf("cannot take the request: %s: %w", strings.Join(probs, "; "), ErrInvalid)
	}
	return nil
}

func validPhone(v string) bool {
	digits := 0
	for i, r := range v {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ' || r == '-' || r == '+' && i == 0:
		default:
			return false
		}
	}
	return digits >= 5 && digits <= 15
}

// MaskPhone hides all but the first three and last four digits of a
// phone number ("138****5678"); a short number keeps its last two only.
func MaskPhone(v string) string {
	r := []rune(v)
	switch {
	case len(r) == 0:
		return ""
	case len(r) >= 9:
		return string(r[:3]) + strings.Repeat("*", len(r)-7) + string(r[len(r)-4:])
	case len(r) > 2:
		return strings.Repeat("*", len(r)-2) + string(r[len(r)-2:])
	}
	return strings.Repeat("*", len(r))
}

// Track returns what a tracking token shows.
func (s *Service) Track(token string) (Tracking, error) {
	s.mu.Lock()
	r := s.byToken[hashToken(token)]
	var req Request
	if r != nil {
		req = r.Request
	}
	s.mu.Unlock()
	if r == nil {
		return Tracking{}, fmt.Errorf("cannot find the tracked request: %w", ErrNotFound)
	}
	t := Tracking{Project: req.Project, Category: req.Category, Location: req.Location, Description: req.Description,
		Phone: MaskPhone(req.Phone), SubmittedAt: req.SubmittedAt, Rating: req.Rating, Comment: req.Comment, Status: StatusSubmitted}
	if _, p, ok := s.cfg.Org.FindProject(req.Project); ok {
		t.ProjectName = p.Name
	}
	if w, ok := s.cfg.Desk.Lookup(req.WorkOrder); ok {
		t.Status = StatusOf(w.State)
		t.ResolvedAt = w.ResolvedAt
	}
	for _, ph := range s.cfg.Desk.OpeningPhotos(req.WorkOrder) {
		t.Photos = append(t.Photos, ph.ID)
	}
	t.CanRate = t.Status == StatusResolved && req.Rating == 0
	return t, nil
}

// Rating is a resident's satisfaction with resolved work.
type Rating struct {
	Rating  int    `json:"rating"` // 1–5
	Comment string `json:"comment,omitempty"`
}

// Rate records the rating of a tracked request: once, after the work is
// resolved.
func (s *Service) Rate(ctx context.Context, token string, rt Rating) (Tracking, error) {
	rt.Comment = strings.TrimSpace(rt.Comment)
	if rt.Rating < 1 || rt.Rating > 5 {
		return Tracking{}, fmt.Errorf("cannot rate: rating must be 1 to 5, got %d: %w", rt.Rating, ErrInvalid)
	}
	if p := textfield.Check("comment", rt.Comment, MaxComment); p != "" {
		return Tracking{}, fmt.Errorf("cannot rate: %s: %w", p, ErrInvalid)
	}
	s.mu.Lock()
	r := s.byToken[hashToken(token)]
	if r == nil {
		s.mu.Unlock()
		return Tracking{}, fmt.Errorf("cannot rate: %w", ErrNotFound)
	}
	if r.Rating != 0 {
		s.mu.Unlock()
		return Tracking{}, fmt.Errorf("cannot rate: this request was rated already: %w", ErrConflict)
	}
	if w, ok := s.cfg.Desk.Lookup(r.WorkOrder); !ok || StatusOf(w.State) != StatusResolved {
		s.mu.Unlock()
		return Tracking{}, fmt.Errorf("cannot rate: the work is not resolved yet: %w", ErrConflict)
	}
	ev := Event{Action: ActionRate, At: s.cfg.Now().UTC(), N: r.n + 1, TokenHash: r.tokenHash, Request: r.Request}
	ev.Rating, ev.Comment, ev.RatedAt = rt.Rating, rt.Comment, ev.At
	s.apply(ev)
	s.outbox.Add(ctx, []Event{ev})
	s.mu.Unlock()
	return s.Track(token)
}

// resource says where a request belongs: its project, and the assignee of
// its work order. s.mu must be held.
func (s *Service) resource(r *request) access.Resource {
	res := access.Resource{Kind: access.KindRequest, Company: r.Company, Project: r.Project}
	if w, ok := s.cfg.Desk.Lookup(r.WorkOrder); ok {
		res.Assignee = w.Assignee
	}
	return res
}

// Resource says where request id belongs, for the API's scope check.
func (s *Service) Resource(id string) (access.Resource, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests[id]
	if r == nil {
		return access.Resource{}, false
	}
	return s.resource(r), true
}

// view is r as p sees it: the phone whole only when p may contact the
// resident and whole is asked for.
func (s *Service) view(p access.Principal, r *request, whole bool) Request {
	out := r.Request
	if w, ok := s.cfg.Desk.Lookup(r.WorkOrder); ok {
		out.State = w.State
	}
	if !whole || !p.May(access.Contact, s.resource(r)) {
		out.Phone, out.PhoneMasked = MaskPhone(out.Phone), out.Phone != ""
	}
	return out
}

// Get returns one request for staff: the phone whole for the project's
// manager and the assigned technician (access.Contact), masked otherwise.
func (s *Service) Get(p access.Principal, id string) (Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests[id]
	if r == nil || !p.Sees(s.resource(r)) {
		return Request{}, fmt.Errorf("cannot find resident request %q: %w", id, ErrNotFound)
	}
	return s.view(p, r, true), nil
}

// Filter selects requests; empty fields match all.
type Filter struct {
	Project   string
	WorkOrder string
	Limit     int // default 500
}

// List returns the requests p may see, newest first, phones masked.
func (s *Service) List(p access.Principal, f Filter) []Request {
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	s.mu.Lock()
	var out []Request
	for _, r := range s.requests {
		if f.Project != "" && r.Project != f.Project || f.WorkOrder != "" && r.WorkOrder != f.WorkOrder || !p.Sees(s.resource(r)) {
			continue
		}
		out = append(out, s.view(p, r, false))
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Request) int {
		if c := b.SubmittedAt.Compare(a.SubmittedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Org is the organisation the service serves.
func (s *Service) Org() *config.Org { return s.cfg.Org }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.cfg.Now() }
