package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plantroom/plantroom/internal/chtest"
)

// startCloud starts bin/cloud alone (console, API, broker, ingest, desk;
// no buildings) with extra configuration appended.
func startCloud(t *testing.T, extra string) *system {
	t.Helper()
	root := repoRoot(t)
	bins := binaries(t, root)
	_, db := chtest.NewDatabase(t)
	ch := chtest.Addr(t)
	dir := t.TempDir()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	now := time.Now().In(loc)
	s := &system{root: root, loc: loc, Month: now.Format("2006-01")}
	api, broker := freePort(t), freePort(t)
	s.URL, s.Broker = "http://"+api, broker
	cfg := fmt.Sprintf(`org: %[1]s/configs/org.yaml
tariffs: %[1]s/configs/tariffs.yaml
templates: %[1]s/configs/templates
rules: %[1]s/configs/rules.yaml
log: {level: info}
metrics: {listen: "off"}
broker: {listen: %[2]q}
api: {listen: %[3]q}
clickhouse: {addr: %[4]q, user: %[5]q, password: %[6]q, database: %[7]s}
%[8]s
`, root, broker, api, ch.Addr, ch.User, ch.Password, db, extra)
	write(t, filepath.Join(dir, "cloud.yaml"), cfg)
	child(t, root, filepath.Join(dir, "cloud.log"), bins+"/cloud", "-config", filepath.Join(dir, "cloud.yaml"))
	waitHTTP(t, s.URL+"/readyz", 60*time.Second)
	return s
}

// apiDo calls the API with a staff token and decodes a 2xx answer.
func (s *system) apiDo(t testing.TB, token, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

const hostileText = `<img src=x onerror="document.title='pwned'"> 电梯门关不上 & "quotes"`

// TestResidentRepairLoop: on a phone, a resident opens the project's
// public link, files a request (no account) and lands on the tracking
// page; the technician the desk dispatched sees it on "My work orders",
// accepts, starts and resolves it in the browser; the tracking page says
// resolved and takes a rating once; the PM closes; HQ's overview shows
// the figures the statistics API gives. Also: the form page's weight on
// a phone, the form's CSRF token, the rate limit's message, and a rotated
// link that stops working.
func TestResidentRepairLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts the cloud; not in -short")
	}
	start := time.Now()
	browser := newBrowser(t)
	s := startCloud(t, "residents: {per_address: 3}")
	var link struct{ Path, Token string }
	if code := s.apiDo(t, "demo-pm-garden", http.MethodGet, "/api/v1/projects/garden/resident-link", nil, &link); code != 200 {
		t.Fatalf("garden's request link: %d", code)
	}

	phone := tab(t, browser)
	if err := chromedp.Do(phone, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	clearCache(t, phone)
	if code := open(t, phone, s.URL+link.Path); code != 200 {
		t.Fatalf("the request form: %d", code)
	}
	kb := transferred(t, phone) / 1024
	t.Logf("resident request form on a phone, empty cache: %.1f KB transferred", kb)
	if kb > 150 {
		t.Errorf("the request form weighs %.1f KB on a phone, more than the 150 KB the issue allows", kb)
	}
	if w := eval[float64](t, phone, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the form is %v px wide on a 390 px phone: it scrolls sideways", w)
	}
	if err := chromedp.Do(phone,
		chromedp.Click(chromedp.CSS(`input[name=category][value=elevator]`)),
		chromedp.SendKeys(chromedp.CSS("#location"), "2号楼1单元 <b>"),
		chromedp.SendKeys(chromedp.CSS("#description"), hostileText),
		chromedp.SendKeys(chromedp.CSS("#phone"), "13812345678"),
		// A photo chosen in the form's file input.
		chromedp.SetUploadFiles(chromedp.CSS("#photos"), []string{residentPhoto(t)}),
		chromedp.Click(chromedp.CSS("#request-submit")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, phone, "the tracking page", `location.pathname.startsWith("/t/") && document.querySelector("#track-status")`, 30*time.Second)
	trackURL := eval[string](t, phone, "location.href")
	waitJS(t, phone, "the resident's photo on the tracking page", `(() => { const i = document.querySelector("#track-photos img.thumb"); return i && i.complete && i.naturalWidth > 0 })()`, 30*time.Second)
	status := func() string { return eval[string](t, phone, `document.querySelector("#track-status").dataset.status`) }
	if got := status(); got != "assigned" && got != "submitted" {
		t.Errorf("tracking status %q right after filing", got)
	}
	if got := eval[string](t, phone, `document.querySelector("#track-description").textContent`); got != hostileText {
		t.Errorf("the description shows as %q, want the text as typed", got)
	}
	if eval[bool](t, phone, `document.title === "pwned" || !!document.querySelector("#track-description img")`) {
		t.Errorf("the resident's text ran as HTML")
	}
	if text := bodyText(t, phone); !strings.Contains(text, "138****5678") || strings.Contains(text, "13812345678") {
		t.Errorf("the tracking page shows the phone unmasked or not at all")
	}

	// The order the desk opened and its assignee, as the API says.
	var reqs struct {
		Requests []struct {
			ID        string
			WorkOrder string `json:"work_order"`
			Phone     string
		}
	}
	s.apiDo(t, "demo-hq-admin", http.MethodGet, "/api/v1/resident-requests?project=garden", nil, &reqs)
	if len(reqs.Requests) != 1 || reqs.Requests[0].Phone != "138****5678" {
		t.Fatalf("requests for HQ = %+v, want one, phone masked", reqs.Requests)
	}
	var order struct{ ID, Assignee, Source, State string }
	s.apiDo(t, "demo-hq-admin", http.MethodGet, "/api/v1/workorders/"+reqs.Requests[0].WorkOrder, nil, &order)
	if order.Source != "resident" || !strings.HasPrefix(order.Assignee, "tech-garden-") {
		t.Fatalf("work order %+v: want a resident's order dispatched to the garden technician on duty", order)
	}

	// The technician works it on their phone.
	tech := tab(t, browser)
	if err := chromedp.Do(tech, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	signIn(t, tech, s, order.Assignee)
	// The resident's photo is on the order's opening, as a thumbnail.
	open(t, tech, s.URL+"/workorders/"+order.ID)
	waitJS(t, tech, "the resident's photo as a thumbnail", `(() => { const i = document.querySelector("#order-history img.thumb"); return i && i.complete && i.naturalWidth > 0 })()`, 30*time.Second)
	if got := eval[int](t, tech, `document.querySelector("#order-history img.thumb").naturalWidth`); got != 320 {
		t.Errorf("the resident's photo thumbnail is %d px wide, want 320", got)
	}
	for _, to := range []string{"accepted", "in_progress", "resolved"} {
		open(t, tech, s.URL+"/my")
		sel := fmt.Sprintf(`li[data-order=%q] button[value=%q]`, order.ID, to)
		waitJS(t, tech, "the "+to+" button", fmt.Sprintf(`document.querySelector(%q)`, sel), 30*time.Second)
		if err := chromedp.Do(tech, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatal(err)
		}
		waitJS(t, tech, "moved to "+to, `location.search.includes("moved=1") && document.readyState === "complete"`, 30*time.Second)
		open(t, phone, trackURL)
		want := map[string]string{"accepted": "assigned", "in_progress": "in_progress", "resolved": "resolved"}[to]
		if got := status(); got != want {
			t.Errorf("after %s the resident sees %q, want %q", to, got, want)
		}
	}

	// The resident rates, once.
	if err := chromedp.Do(phone,
		chromedp.Click(chromedp.CSS(`input[name=rating][value="5"]`)),
		chromedp.SendKeys(chromedp.CSS("#comment"), "师傅很快 <i>"),
		chromedp.Click(chromedp.CSS("#rate-submit")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, phone, "the rating shown", `document.querySelector("#track-rating")`, 30*time.Second)
	if got := eval[string](t, phone, `document.querySelector("#track-rating").dataset.rating + "|" + document.querySelector("#track-comment").textContent`); got != "5|师傅很快 <i>" {
		t.Errorf("rating shown as %q", got)
	}
	if eval[bool](t, phone, `!!document.querySelector("#rate-form")`) {
		t.Errorf("the rating form is still offered after rating")
	}

	// The PM closes; HQ's overview shows what the statistics API gives.
	if code := s.apiDo(t, "demo-pm-garden", http.MethodPost, "/api/v1/workorders/"+order.ID+"/transitions", map[string]string{"to": "closed"}, nil); code != 200 {
		t.Fatalf("PM closes: %d", code)
	}
	var st struct {
		Projects []struct {
			Project      string
			Requests     int
			Resolved     int
			Rated        int
			Satisfaction *float64
		}
	}
	s.apiDo(t, "demo-hq-admin", http.MethodGet, "/api/v1/stats/residents?month="+s.Month, nil, &st)
	var garden struct{ requests, resolved, rated int }
	var sat float64
	for _, p := range st.Projects {
		if p.Project == "garden" && p.Satisfaction != nil {
			garden.requests, garden.resolved, garden.rated, sat = p.Requests, p.Resolved, p.Rated, *p.Satisfaction
		}
	}
	if garden.requests != 1 || garden.resolved != 1 || garden.rated != 1 || sat != 5 {
		t.Fatalf("statistics for garden: %+v satisfaction %v, want 1 request resolved and rated 5", garden, sat)
	}
	hq := tab(t, browser)
	signIn(t, hq, s, "hq-admin")
	open(t, hq, s.URL+"/hq?month="+s.Month)
	waitJS(t, hq, "the residents section", `document.querySelector('#residents-table tr[data-project="garden"]')`, 60*time.Second)
	row := eval[string](t, hq, `(() => { const r = document.querySelector('#residents-table tr[data-project="garden"]');
		return ["requests","resolved"].map(c => r.querySelector('[data-col="'+c+'"]').textContent.trim()).join("|") + "|" + r.querySelector('[data-col="satisfaction"]').dataset.value })()`)
	if want := fmt.Sprintf("%d|%d|%v", garden.requests, garden.resolved, sat); row != want {
		t.Errorf("HQ overview shows %q for garden, the API %q", row, want)
	}

	// The form's CSRF token is required, and the address's limit (3 in
	// this configuration, one used above) ends with a clear message.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.URL + link.Path)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, rest, _ := strings.Cut(string(page), `name="csrf" value="`)
	csrf, _, _ := strings.Cut(rest, `"`)
	form := url.Values{"category": {"other"}, "location": {"地库"}, "description": {"灯不亮"}}
	post := func(v url.Values) (int, string) {
		resp, err := client.PostForm(s.URL+link.Path, v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post(form); code != http.StatusForbidden {
		t.Errorf("a form post without the CSRF token: %d, want 403", code)
	}
	form.Set("csrf", csrf)
	for i := 0; i < 2; i++ {
		if code, body := post(form); code != http.StatusSeeOther {
			t.Fatalf("request %d through the form: %d %.300s", i+2, code, body)
		}
	}
	code, body := post(form)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "提交次数太多") || !strings.Contains(body, "分钟后再试") {
		t.Errorf("over the limit: %d, want 429 with the message; page %.500s", code, body)
	}

	// Rotating the link in the console stops the old one.
	pm := tab(t, browser)
	signIn(t, pm, s, "pm-garden")
	open(t, pm, s.URL+"/projects/garden/requests")
	if got := eval[string](t, pm, `document.querySelector("#request-link-url").textContent`); got != s.URL+link.Path {
		t.Errorf("the PM's page shows link %q, want %q", got, s.URL+link.Path)
	}
	if err := chromedp.Do(pm, chromedp.Click(chromedp.CSS("#rotate"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pm, "rotated", `location.search.includes("rotated=1") && document.readyState === "complete"`, 30*time.Second)
	if got := eval[string](t, pm, `document.querySelector("#request-link-url").textContent`); got == s.URL+link.Path || !strings.HasPrefix(got, s.URL+"/r/") {
		t.Errorf("after rotating the page shows %q", got)
	}
	if code := open(t, phone, s.URL+link.Path); code != http.StatusNotFound || !strings.Contains(bodyText(t, phone), "链接已失效") {
		t.Errorf("the old link after rotation: %d, want 404 saying the link no longer works", code)
	}

	if dir := os.Getenv("PLANTROOM_SCREENSHOTS"); dir != "" {
		t.Run("screenshots", func(t *testing.T) {
			var l struct{ Path string }
			s.apiDo(t, "demo-pm-garden", http.MethodGet, "/api/v1/projects/garden/resident-link", nil, &l)
			residentShots(t, browser, s, dir, l.Path, trackURL)
		})
	}
	t.Logf("resident browser test took %s", time.Since(start).Round(100*time.Millisecond))
}

// residentShots writes the phone pages of the loop: the form, the
// tracking page (rated), and the PM's requests page.
func residentShots(t *testing.T, browser context.Context, s *system, dir, formPath, trackURL string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sh := range []struct{ name, staff, url string }{
		{"request-phone", "", s.URL + formPath},
		{"track-phone", "", trackURL},
		{"requests-phone", "pm-garden", s.URL + "/projects/garden/requests"},
	} {
		ctx := tab(t, browser)
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		if sh.staff != "" {
			signIn(t, ctx, s, sh.staff)
		}
		open(t, ctx, sh.url)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, sh.name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", p)
	}
}

// residentPhoto writes a 640×480 JPEG for the form's file input.
func residentPhoto(t *testing.T) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 5)
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, nil); err != nil {
		t.Fatal(err)
	}
	pic := filepath.Join(t.TempDir(), "IMG_2001.jpg")
	if err := os.WriteFile(pic, jb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return pic
}
