// Package residenthttp serves residents' repair requests over the API: the
// public routes a resident reaches through a project's request link and
// tracking token (no account), and the staff routes (the link and its
// rotation, the requests with phones masked, HQ statistics). The resident
// package itself knows nothing of HTTP.
package residenthttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/resident"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
	"github.com/plantroom/plantroom/internal/timerange"
)

// MaxBody bounds a public request's body (the API's own body limit is
// larger): a request's fields fit in a few KB.
const MaxBody = 16 << 10

// Routes are the resident requests' API routes:
//
//	GET  /public/requests/:link             the form's project and choices (no account)
//	POST /public/requests/:link             file a request: resident.Submission → tracking token
//	                                        (JSON, or multipart: part "request" JSON + up to 3 parts "photo")
//	GET  /public/track/:token               the request's status in plain words
//	POST /public/track/:token/rating        rate resolved work once: resident.Rating
//	GET  /public/track/:token/photos/:photo?size=thumb  one of the request's own photos
//	GET  /projects/:project/resident-link   the project's public link (Manage)
//	POST /projects/:project/resident-link   rotate it: the old one stops working (Manage)
//	GET  /resident-requests?project=&workorder=&limit=   phones masked
//	GET  /resident-requests/:request        the phone whole for access.Contact
//	GET  /stats/residents?month=YYYY-MM     HQ statistics per project
func Routes(s *resident.Service) []api.Route {
	h := &handlers{s: s}
	request := api.Resource(access.KindRequest, "request", h.owner)
	maxPhoto := int64(photo.DefaultMaxBytes)
	if s != nil && s.Photos() != nil {
		maxPhoto = s.Photos().MaxBytes()
	}
	return []api.Route{
		{Method: http.MethodGet, Path: "/public/requests/:link", Scope: api.Public(), Handler: h.form},
		// JSON (MaxBody), or multipart with photos (MaxMultipart).
		{Method: http.MethodPost, Path: "/public/requests/:link", Scope: api.Public(), Handler: h.submit, BodyLimit: MaxMultipart(maxPhoto)},
		{Method: http.MethodGet, Path: "/public/track/:token", Scope: api.Public(), Handler: h.track},
		{Method: http.MethodPost, Path: "/public/track/:token/rating", Scope: api.Public(), Handler: h.rate},
		{Method: http.MethodGet, Path: "/public/track/:token/photos/:photo", Scope: api.Public(), Handler: h.trackPhoto},
		{Method: http.MethodGet, Path: "/projects/:project/resident-link", Scope: api.Project("project").Do(access.Manage), Handler: h.link},
		{Method: http.MethodPost, Path: "/projects/:project/resident-link", Scope: api.Project("project").Do(access.Manage), Handler: h.rotate},
		{Method: http.MethodGet, Path: "/resident-requests", Scope: api.AnyStaff(), Handler: h.list},
		{Method: http.MethodGet, Path: "/resident-requests/:request", Scope: request, Handler: h.get},
		{Method: http.MethodGet, Path: "/stats/residents", Scope: api.Company().Do(access.Report), Handler: h.monthly},
	}
}

type handlers struct{ s *resident.Service }

func (h *handlers) owner(_ context.Context, id string) (access.Resource, error) {
	r, ok := h.s.Resource(id)
	if !ok {
		return access.Resource{}, fmt.Errorf("resident request %q: %w", id, api.ErrNotFound)
	}
	return r, nil
}

// Form is what the public form needs to know.
type Form struct {
	Project     string   `json:"project"`
	ProjectName string   `json:"project_name"`
	Categories  []string `json:"categories"`
	Limits      struct {
		Location    int `json:"location"`
		Description int `json:"description"`
		Phone       int `json:"phone"`
	} `json:"limits"`
}

func (h *handlers) form(c echo.Context) error {
	_, p, err := h.s.FindLink(c.Param("link"))
	if err != nil {
		return apiError(err)
	}
	f := Form{Project: p.ID, ProjectName: p.Name, Categories: resident.Categories}
	f.Limits.Location, f.Limits.Description, f.Limits.Phone = resident.MaxLocation, resident.MaxDescription, resident.MaxPhone
	return c.JSON(http.StatusOK, f)
}

// decodeJSON reads a public body: JSON only (a cross-site HTML form cannot
// send it without the browser's preflight, which nothing here answers),
// at most MaxBody bytes, no unknown fields.
func decodeJSON(c echo.Context, v any) error {
	if mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeBadRequest, Message: "the body must be application/json"}
	}
	body := http.MaxBytesReader(c.Response(), c.Request().Body, MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge, Message: fmt.Sprintf("the body is larger than %d bytes", MaxBody)}
		}
		return api.BadRequest("invalid JSON body: %v", err)
	}
	return nil
}

// decodeMultipart reads a request with photos: a part "request" holding
// the JSON submission (at most MaxBody bytes), then up to
// resident.MaxPhotos parts "photo". The whole body is bounded by
// MaxMultipart; each photo is checked by the photo store on Submit.
func (h *handlers) decodeMultipart(c echo.Context, sub *resident.Submission) error {
	maxPhoto := int64(photo.DefaultMaxBytes)
	if ps := h.s.Photos(); ps != nil {
		maxPhoto = ps.MaxBytes()
	}
	limit := MaxMultipart(maxPhoto)
	tooLarge := &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
		Message: fmt.Sprintf("the body is larger than %d bytes (%d photos of at most %d bytes)", limit, resident.MaxPhotos, maxPhoto)}
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, limit)
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return api.BadRequest("invalid multipart body: %v", err)
	}
	seen := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return tooLarge
		}
		if err != nil {
			return api.BadRequest("invalid multipart body: %v", err)
		}
		switch part.FormName() {
		case "request":
			dec := json.NewDecoder(io.LimitReader(part, MaxBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(sub); err != nil {
				return api.BadRequest("invalid JSON in part \"request\": %v", err)
			}
			seen = true
		case "photo":
			if len(sub.Photos) == resident.MaxPhotos {
				return api.BadRequest("too many photos: at most %d", resident.MaxPhotos)
			}
			// The photo store reads at most its limit and one byte more.
			b, err := io.ReadAll(io.LimitReader(part, maxPhoto+1))
			if errors.As(err, &mb) {
				return tooLarge
			}
			if err != nil {
				return api.BadRequest("cannot read photo %d: %v", len(sub.Photos)+1, err)
			}
			if len(b) == 0 { // an empty file input
				continue
			}
			sub.Photos = append(sub.Photos, bytes.NewReader(b))
		default:
			return api.BadRequest("unknown part %q (want request and photo)", part.FormName())
		}
	}
	if !seen {
		return api.BadRequest("the multipart body has no part \"request\"")
	}
	return nil
}

// Submitted is the answer to a filed request.
type Submitted struct {
	resident.Receipt
	Path string `json:"path"` // the tracking page on the console
}

// PhotoPart bounds a multipart body's overhead per photo (part headers).
const PhotoPart = 4 << 10

// MaxMultipart is the largest multipart request: the fields and
// resident.MaxPhotos photos of at most maxPhoto bytes each.
func MaxMultipart(maxPhoto int64) int64 {
	return MaxBody + resident.MaxPhotos*(maxPhoto+PhotoPart)
}

func (h *handlers) submit(c echo.Context) error {
	var sub resident.Submission
	if mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); mt == echo.MIMEMultipartForm {
		if err := h.decodeMultipart(c, &sub); err != nil {
			return err
		}
	} else if err := decodeJSON(c, &sub); err != nil {
		return err
	}
	rc, err := h.s.Submit(c.Request().Context(), c.Param("link"), c.RealIP(), sub)
	if err != nil {
		return apiErrorC(c, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, api.Prefix+"/public/track/"+rc.Token)
	return c.JSON(http.StatusCreated, Submitted{Receipt: rc, Path: resident.TrackPath(rc.Token)})
}

// trackPhoto serves a photo the tracked request carried, and only those.
func (h *handlers) trackPhoto(c echo.Context) error {
	id := c.Param("photo")
	notFound := &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("photo %q not found in this request", id)}
	t, err := h.s.Track(c.Param("token"))
	if err != nil {
		return apiError(err)
	}
	if h.s.Photos() == nil || !slices.Contains(t.Photos, id) {
		return notFound
	}
	return workorderhttp.ServePhoto(c, h.s.Photos(), id, notFound)
}

func (h *handlers) track(c echo.Context) error {
	t, err := h.s.Track(c.Param("token"))
	if err != nil {
		return apiError(err)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, t)
}

func (h *handlers) rate(c echo.Context) error {
	var rt resident.Rating
	if err := decodeJSON(c, &rt); err != nil {
		return err
	}
	t, err := h.s.Rate(c.Request().Context(), c.Param("token"), rt)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, t)
}

func (h *handlers) link(c echo.Context) error {
	_, p := api.ProjectOf(c)
	l, err := h.s.Link(p.ID)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, l)
}

func (h *handlers) rotate(c echo.Context) error {
	co, p := api.ProjectOf(c)
	l, err := h.s.Rotate(c.Request().Context(), co.ID, p.ID, api.PrincipalOf(c).Staff)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, l)
}

func (h *handlers) list(c echo.Context) error {
	f := resident.Filter{Project: c.QueryParam("project"), WorkOrder: c.QueryParam("workorder")}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			return api.BadRequest("invalid limit %q: want 1 to 5000", v)
		}
		f.Limit = n
	}
	p := *api.PrincipalOf(c)
	if f.Project != "" {
		if co, _, ok := h.s.Org().FindProject(f.Project); !ok || !p.SeesProject(co.ID, f.Project) {
			return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("project %q not found", f.Project)}
		}
	}
	list := h.s.List(p, f)
	if list == nil {
		list = []resident.Request{}
	}
	return c.JSON(http.StatusOK, map[string]any{"requests": list})
}

func (h *handlers) get(c echo.Context) error {
	r, err := h.s.Get(*api.PrincipalOf(c), c.Param("request"))
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, r)
}

func (h *handlers) monthly(c echo.Context) error {
	month := c.QueryParam("month")
	now := h.s.Now()
	if month == "" {
		month = now.Format("2006-01")
	}
	y, m, err := workorder.ParseMonth(month)
	if err != nil {
		return api.BadRequest("invalid month %q: want YYYY-MM", month)
	}
	if err := timerange.Check("month", month, time.Date(y, m, 1, 0, 0, 0, 0, time.UTC), now); err != nil {
		return api.BadRequest("%s", err)
	}
	out, err := h.s.MonthlyStats(*api.PrincipalOf(c), month)
	if err != nil {
		return apiError(err)
	}
	return c.JSON(http.StatusOK, out)
}

// apiErrorC is apiError with a rate limit's Retry-After header.
func apiErrorC(c echo.Context, err error) error {
	var le *resident.LimitError
	if errors.As(err, &le) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(le.RetryAfter.Seconds()))))
	}
	return apiError(err)
}

// apiError maps the service's errors to API answers.
func apiError(err error) error {
	var le *resident.LimitError
	switch {
	case errors.As(err, &le):
		return &api.Error{Status: http.StatusTooManyRequests, Code: api.CodeTooManyRequests, Message: err.Error()}
	case errors.Is(err, resident.ErrNotFound), errors.Is(err, workorder.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, resident.ErrRefused):
		return &api.Error{Status: http.StatusBadRequest, Code: "refused", Message: "the request was refused"}
	case errors.Is(err, resident.ErrInvalid), errors.Is(err, workorder.ErrInvalid):
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: err.Error()}
	case errors.Is(err, photo.ErrTooLarge), errors.Is(err, photo.ErrUnsupported):
		return workorderhttp.PhotoError(err)
	case errors.Is(err, resident.ErrConflict):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: err.Error()}
	}
	return err
}
