package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// apiPost writes to an API route with a staff token.
func (s *system) apiPost(t testing.TB, token, path string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// assignedOrder opens a manual garden order as its manager and assigns it
// to tech-garden-1; it returns the order's id.
func (s *system) assignedOrder(t testing.TB, device, title string, priority int, sla string) string {
	t.Helper()
	var o struct {
		ID string `json:"id"`
	}
	if code := s.apiPost(t, "demo-pm-garden", "/api/v1/workorders", map[string]any{"project": "garden", "device": device, "title": title,
		"priority": priority, "sla": sla}, &o); code != http.StatusCreated {
		t.Fatalf("create %q: %d", title, code)
	}
	if code := s.apiPost(t, "demo-pm-garden", "/api/v1/workorders/"+o.ID+"/transitions", map[string]any{"to": "assigned", "assignee": "tech-garden-1"}, nil); code != 200 {
		t.Fatalf("assign %s: %d", o.ID, code)
	}
	return o.ID
}

// technicianOrder is the technician's phone flow: "my work orders" sorted
// and live with a ticking countdown, the order's page, scanning in at the
// device, a step with a photo from the file input and its thumbnail, and
// 404 for a technician of another project (page and photo). It leaves the
// order's id in s.Order for the screenshots.
func technicianOrder(t *testing.T, browser context.Context, s *system) {
	ctx := tab(t, browser)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	normal := s.assignedOrder(t, "", "楼道灯不亮 <b>", 3, "3h")
	urgent := s.assignedOrder(t, "", "消防水箱液位低", 1, "5h")
	signIn(t, ctx, s, "tech-garden-1")
	open(t, ctx, s.URL+"/my")
	waitJS(t, ctx, "the live list connects", `document.getElementById("my-live").classList.contains("online")`, 20*time.Second)
	// Sorted: critical first, then by due time (no due time last).
	type card struct {
		ID   string `json:"id"`
		Crit bool   `json:"crit"`
		Due  string `json:"due"`
	}
	cards := eval[[]card](t, ctx, `Array.from(document.querySelectorAll("#my-orders > li")).map(li => ({id: li.dataset.order,
		crit: li.classList.contains("sev-critical"), due: (li.querySelector("[data-due]") || {dataset: {}}).dataset.due || ""}))`)
	ids := make([]string, len(cards))
	for i, c := range cards {
		ids[i] = c.ID
	}
	if !slices.Contains(ids, normal) || !slices.Contains(ids, urgent) || slices.Index(ids, urgent) > slices.Index(ids, normal) {
		t.Errorf("my orders %v: want %s (critical, due later) before %s", ids, urgent, normal)
	}
	if !slices.IsSortedFunc(cards, func(a, b card) int {
		switch {
		case a.Crit != b.Crit && a.Crit:
			return -1
		case a.Crit != b.Crit:
			return 1
		case (a.Due == "") != (b.Due == "") && a.Due == "":
			return 1
		case (a.Due == "") != (b.Due == ""):
			return -1
		}
		ta, _ := time.Parse(time.RFC3339, a.Due)
		tb, _ := time.Parse(time.RFC3339, b.Due)
		return ta.Compare(tb)
	}) {
		t.Errorf("my orders not critical first then by due time: %+v", cards)
	}
	if got := eval[string](t, ctx, `document.querySelector('li[data-order="`+normal+`"] h2').textContent`); !strings.Contains(got, "楼道灯不亮 <b>") {
		t.Errorf("title not shown as text: %q", got)
	}
	// The countdown ticks: a due time two hours from now reads "剩余 1 小时
	// 59 分" (or 2 小时 0 分) at the next tick, without a reload.
	eval[bool](t, ctx, `(window.notReloaded = true, document.querySelector('li[data-order="`+normal+`"] [data-due]').dataset.due = new Date(Date.now() + 7200e3).toISOString(), true)`)
	waitJS(t, ctx, "the countdown ticks", `/剩余 (1 小时 59|2 小时 0) 分/.test(document.querySelector('li[data-order="`+normal+`"] [data-due]').textContent)`, 30*time.Second)
	// A new assignment appears live.
	order := s.assignedOrder(t, "garden-elevator-2", "2号楼客梯异响", 2, "2h")
	waitJS(t, ctx, "the new assignment on /my without a reload", `window.notReloaded && document.querySelector('li[data-order="`+order+`"]')`, 30*time.Second)

	// Its page: device, building, only "accept" for now.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`li[data-order="`+order+`"] h2 a`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the order's page", `location.pathname === "/workorders/`+order+`" && document.readyState === "complete"`, 30*time.Second)
	facts := eval[string](t, ctx, `document.querySelector(".order-facts").innerText`)
	for _, want := range []string{"2号楼客梯", "garden-elevator-2", "尚未到场"} {
		if !strings.Contains(facts, want) {
			t.Errorf("order facts lack %q: %q", want, facts)
		}
	}
	steps := func() []string {
		return eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#order-moves button[name="to"]')).map(b => b.value)`)
	}
	if got := steps(); !slices.Equal(got, []string{"accepted"}) {
		t.Errorf("steps offered %v, want [accepted]", got)
	}
	// Scanning the device's label checks the technician in.
	open(t, ctx, s.URL+"/d/garden-elevator-2")
	var w struct {
		ArrivedAt string `json:"arrived_at"`
	}
	if code := s.apiGet(t, "demo-pm-garden", "/api/v1/workorders/"+order, &w); code != 200 || w.ArrivedAt == "" {
		t.Fatalf("after the scan: %d, arrived_at %q", code, w.ArrivedAt)
	}
	open(t, ctx, s.URL+"/workorders/"+order)
	if got := eval[string](t, ctx, `document.getElementById("order-history").innerText`); !strings.Contains(got, "到场签到") {
		t.Errorf("history lacks the arrival: %q", got)
	}
	// Accept with a note and a photo chosen in the file input.
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 7)
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, nil); err != nil {
		t.Fatal(err)
	}
	pic := filepath.Join(t.TempDir(), "IMG_0001.jpg")
	if err := os.WriteFile(pic, jb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetUploadFiles(chromedp.CSS("#order-photos"), []string{pic}),
		chromedp.SendKeys(chromedp.CSS(`#order-moves textarea[name="note"]`), "已到场，电梯异响来自导轨"),
		chromedp.Click(chromedp.CSS(`#order-moves button[value="accepted"]`)),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the step taken", `location.search.includes("done=moved") && document.readyState === "complete"`, 30*time.Second)
	waitJS(t, ctx, "the thumbnail shown", `(() => { const i = document.querySelector("#order-history img.thumb"); return i && i.complete && i.naturalWidth > 0 })()`, 30*time.Second)
	if got := eval[int](t, ctx, `document.querySelector("#order-history img.thumb").naturalWidth`); got != 320 {
		t.Errorf("thumbnail %d px wide, want 320", got)
	}
	if got := steps(); !slices.Equal(got, []string{"in_progress"}) {
		t.Errorf("after accepting, steps %v, want [in_progress]", got)
	}
	photo := eval[string](t, ctx, `document.querySelector("#order-history img.thumb").getAttribute("src")`)

	// A technician of the tower: 404 for the page and the photo by URL.
	other := tab(t, browser)
	signIn(t, other, s, "tech-tower-1")
	for _, u := range []string{"/workorders/" + order, photo, strings.TrimSuffix(photo, "?size=thumb")} {
		if code := open(t, other, s.URL+u); code != http.StatusNotFound {
			t.Errorf("tech-tower-1 opens %s: %d, want 404", u, code)
		}
	}
	s.Order = order
}
