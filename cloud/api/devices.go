package api

import (
	_ "embed"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/config"
)

// LatestValues gives the newest value of each metric of a device:
// *ingest.Latest, kept by the ingest or refreshed from ClickHouse.
type LatestValues interface {
	Get(device string) map[string]ingest.LatestValue
}

// Presence says whether gateways are connected and devices report:
// *ingest.Presence.
type Presence interface {
	Gateway(id string) (ingest.GatewayState, bool)
	Device(id string) (ingest.DeviceState, bool)
}

// Device states in the device list.
const (
	StateOnline  = ingest.DeviceOnline  // a reading within the stale threshold
	StateStale   = ingest.DeviceStale   // the device fell silent; its gateway is not known to be down
	StateOffline = ingest.DeviceOffline // its gateway is disconnected, or the gateway reported it offline
	StateUnknown = ingest.DeviceUnknown // nothing heard of it yet (or, state_reason waiting, not since the cloud started)
)

// Without a Presence, a device is stale after StalePolls poll intervals
// without a reading (never less than MinStale).
const (
	StalePolls = 3
	MinStale   = 11 * time.Minute // unchanged values are re-sent every heartbeat (5m)
)

type metricValue struct {
	Value   float64   `json:"value"`
	Unit    string    `json:"unit,omitempty"`
	At      time.Time `json:"at"`
	Quality uint8     `json:"quality"`
	State   string    `json:"state,omitempty"` // meaning of a coded value ("running")
}

type deviceView struct {
	ID           string                 `json:"id"`
	Name         string                 `json:"name"`
	Kind         string                 `json:"kind"`
	Template     string                 `json:"template"`
	Project      string                 `json:"project"`
	Building     string                 `json:"building"`
	Gateway      string                 `json:"gateway"`
	PollInterval string                 `json:"poll_interval"`
	State        string                 `json:"state"`
	StateReason  string                 `json:"state_reason,omitempty"` // gateway_offline, device_offline, no_data, waiting
	LastSeen     *time.Time             `json:"last_seen"`
	GatewayState *gatewayState          `json:"gateway_state"`
	Values       map[string]metricValue `json:"values"`
	// Writable are the points of the device's template a command may
	// write (POST /devices/{device}/commands), whoever asks: whether the
	// viewer may command is the access policy's (access.Command).
	Writable []writablePoint `json:"writable"`
}

// writablePoint is a point a command may write: Allowed values, or any
// value within Min … Max.
type writablePoint struct {
	Point   string    `json:"point"`
	Unit    string    `json:"unit,omitempty"`
	Allowed []float64 `json:"allowed,omitempty"`
	Min     *float64  `json:"min,omitempty"`
	Max     *float64  `json:"max,omitempty"`
}

type gatewayState struct {
	Online *bool      `json:"online"` // null: unknown
	Since  *time.Time `json:"since"`
}

// deviceView assembles a device with its newest values and state.
func (s *Server) deviceView(d config.DeviceInfo, latest map[string]ingest.LatestValue, loc *time.Location) deviceView {
	v := deviceView{
		ID: d.Device.ID, Name: d.Device.Name, Kind: d.Device.Kind, Template: d.Device.Template,
		Project: d.Project.ID, Building: d.Device.Building, Gateway: d.Gateway.ID,
		PollInterval: d.Device.PollInterval.String(), Values: map[string]metricValue{},
		GatewayState: &gatewayState{}, Writable: []writablePoint{},
	}
	t := s.deps.Bundle.Templates[d.Device.Template]
	if t != nil && t.Kind != config.KindElevator {
		for _, pt := range t.Points {
			if pt.Writable {
				v.Writable = append(v.Writable, writablePoint{Point: pt.Metric, Unit: pt.Unit, Allowed: pt.Allowed, Min: pt.Min, Max: pt.Max})
			}
		}
		if t.MQTT != nil { // Tasmota/Shelly relays
			for _, f := range t.MQTT.Fields {
				if f.Writable {
					v.Writable = append(v.Writable, writablePoint{Point: f.Metric, Unit: f.Unit, Allowed: f.Allowed, Min: f.Min, Max: f.Max})
				}
			}
		}
	}
	var newest time.Time
	for metric, r := range latest {
		mv := metricValue{Value: r.Value, At: r.TS.In(loc), Quality: uint8(r.Quality)}
		mv.Unit, _ = metricUnit(t, metric)
		if t != nil {
			if pt := t.Point(metric); pt != nil {
				mv.State = pt.States[int(r.Value)]
			}
		}
		v.Values[metric] = mv
		if r.TS.After(newest) {
			newest = r.TS
		}
	}
	if s.deps.Presence != nil {
		// One judgement for every screen and the alarms: the edge's
		// offline/online events first, staleness second (ingest.Presence).
		if g, ok := s.deps.Presence.Gateway(d.Gateway.ID); ok && g.Known {
			online, since := g.Online, g.Since.In(loc)
			v.GatewayState.Online, v.GatewayState.Since = &online, &since
		}
		if ds, ok := s.deps.Presence.Device(d.Device.ID); ok {
			v.State, v.StateReason = ds.State, ds.Reason
			if ds.LastTS.After(newest) {
				newest = ds.LastTS
			}
		}
	} else if !newest.IsZero() {
		v.State = StateStale
		if s.now().Sub(newest) <= max(StalePolls*d.Device.PollInterval.Duration, MinStale) {
			v.State = StateOnline
		}
	}
	if v.State == "" {
		v.State = StateUnknown
	}
	if !newest.IsZero() {
		ls := newest.In(loc)
		v.LastSeen = &ls
	}
	return v
}

// latestOf returns the newest values of devs: from the ingest's cache when
// the server has one, otherwise from the hourly roll-up of the last day.
func (s *Server) latestOf(c echo.Context, company, project string, devs []string) (map[string]map[string]ingest.LatestValue, error) {
	if s.deps.Latest != nil {
		out := make(map[string]map[string]ingest.LatestValue, len(devs))
		for _, d := range devs {
			out[d] = s.deps.Latest.Get(d)
		}
		return out, nil
	}
	stored, err := s.readings.Latest(c.Request().Context(), company, project, devs, s.now().Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]ingest.LatestValue, len(stored))
	for d, ms := range stored {
		out[d] = make(map[string]ingest.LatestValue, len(ms))
		for m, v := range ms {
			out[d][m] = ingest.LatestValue{Value: v.Value, TS: v.TS}
		}
	}
	return out, nil
}

func (s *Server) listDevices(c echo.Context) error {
	co, pr := ProjectOf(c)
	var infos []config.DeviceInfo
	var ids []string
	for _, d := range s.deps.Bundle.Org.Devices() {
		if d.Project.ID == pr.ID {
			infos = append(infos, d)
			ids = append(ids, d.Device.ID)
		}
	}
	latest, err := s.latestOf(c, co.ID, pr.ID, ids)
	if err != nil {
		return err
	}
	out := make([]deviceView, 0, len(infos))
	for _, d := range infos {
		out = append(out, s.deviceView(d, latest[d.Device.ID], pr.Location))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return c.JSON(http.StatusOK, map[string]any{"project": pr.ID, "devices": out})
}

func (s *Server) getDevice(c echo.Context) error {
	d := DeviceOf(c)
	latest, err := s.latestOf(c, d.Company.ID, d.Project.ID, []string{d.Device.ID})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.deviceView(d, latest[d.Device.ID], d.Project.Location))
}

type projectView struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Company     string            `json:"company"`
	TimeZone    string            `json:"time_zone"`
	FloorAreaM2 float64           `json:"floor_area_m2"`
	Tariff      string            `json:"tariff"`
	Buildings   []config.Building `json:"buildings"`
	Gateways    []gatewayView     `json:"gateways"`
	Devices     int               `json:"devices"`
}

type gatewayView struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Building string     `json:"building"`
	Devices  int        `json:"devices"`
	Online   *bool      `json:"online"` // null: unknown
	Since    *time.Time `json:"since"`
}

func (s *Server) projectView(co *config.Company, pr *config.Project) projectView {
	v := projectView{ID: pr.ID, Name: pr.Name, Company: co.ID, TimeZone: pr.TimeZone, FloorAreaM2: pr.FloorAreaM2,
		Tariff: pr.Tariff, Buildings: pr.Buildings, Gateways: []gatewayView{}}
	if v.Buildings == nil {
		v.Buildings = []config.Building{}
	}
	for _, g := range pr.Gateways {
		gv := gatewayView{ID: g.ID, Name: g.Name, Building: g.Building, Devices: len(g.Devices)}
		if s.deps.Presence != nil {
			if st, ok := s.deps.Presence.Gateway(g.ID); ok && st.Known {
				online, since := st.Online, st.Since.In(pr.Location)
				gv.Online, gv.Since = &online, &since
			}
		}
		v.Gateways = append(v.Gateways, gv)
		v.Devices += len(g.Devices)
	}
	return v
}

func (s *Server) listProjects(c echo.Context) error {
	p := PrincipalOf(c)
	out := []projectView{}
	for ci := range s.deps.Bundle.Org.Companies {
		co := &s.deps.Bundle.Org.Companies[ci]
		for pi := range co.Projects {
			if pr := &co.Projects[pi]; p.SeesProject(co.ID, pr.ID) {
				out = append(out, s.projectView(co, pr))
			}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"projects": out})
}

func (s *Server) getProject(c echo.Context) error {
	return c.JSON(http.StatusOK, s.projectView(ProjectOf(c)))
}

func (s *Server) me(c echo.Context) error {
	p := PrincipalOf(c)
	projects := p.Projects
	if p.HQ() {
		projects = nil
		for _, co := range s.deps.Bundle.Org.Companies {
			if co.ID == p.Company {
				for _, pr := range co.Projects {
					projects = append(projects, pr.ID)
				}
			}
		}
	}
	if projects == nil {
		projects = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{
		"staff": p.Staff, "name": p.Name, "role": p.Role, "company": p.Company, "projects": projects,
	})
}

// OpenAPI is the API's OpenAPI 3 document, served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// ownRoutes are the routes of this package; other packages add theirs
// with Register.
func (s *Server) ownRoutes() []Route {
	return []Route{
		{Method: http.MethodGet, Path: "/me", Scope: AnyStaff(), Handler: s.me},
		{Method: http.MethodGet, Path: "/openapi.yaml", Scope: AnyStaff(), Handler: serveOpenAPI},
		{Method: http.MethodGet, Path: "/projects", Scope: AnyStaff(), Handler: s.listProjects},
		{Method: http.MethodGet, Path: "/projects/:project", Scope: Project("project"), Handler: s.getProject},
		{Method: http.MethodGet, Path: "/projects/:project/devices", Scope: Project("project"), Handler: s.listDevices},
		{Method: http.MethodGet, Path: "/devices/:device", Scope: Device("device"), Handler: s.getDevice},
		{Method: http.MethodGet, Path: "/devices/:device/series", Scope: Device("device"), Handler: s.series},
		{Method: http.MethodGet, Path: "/projects/:project/energy/monthly", Scope: Project("project").Do(access.Report), Handler: s.projectMonthly},
		{Method: http.MethodGet, Path: "/projects/:project/energy/daily", Scope: Project("project").Do(access.Report), Handler: s.projectDaily},
		{Method: http.MethodGet, Path: "/energy/monthly", Scope: Company().Do(access.Report), Handler: s.companyMonthly},
	}
}

func serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
