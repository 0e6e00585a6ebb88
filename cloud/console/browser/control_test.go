package browser

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// garageControl is remote control in the browser (issue 16): the garden's
// project manager switches the garage lights (garden-plug-1, a Tasmota
// relay on the edge's plant-room broker) from the device page with a
// reason; the progress block reaches "applied" on its own (htmx polling),
// the next reading on the page shows the relay switched, and the device's
// record lists the command. HQ sees the device without any control.
func garageControl(t *testing.T, browser context.Context, s *system) {
	const page = "/devices/garden-plug-1"
	latest := func() (float64, time.Time, bool) {
		var d struct {
			Values map[string]struct {
				Value float64
				At    time.Time `json:"at"`
			} `json:"values"`
		}
		if code := s.apiGet(t, "demo-pm-garden", "/api/v1/devices/garden-plug-1", &d); code != 200 {
			t.Fatalf("GET the plug: %d", code)
		}
		v, ok := d.Values["switch_on"]
		return v.Value, v.At, ok
	}
	// The plug reports its relay state when the simulator starts; wait for it.
	var was float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, _, ok := latest()
		if ok {
			was = v
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no switch_on reading of garden-plug-1 within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := 1 - was

	ctx := tab(t, browser)
	signIn(t, ctx, s, "pm-garden")
	if code := open(t, ctx, s.URL+page); code != 200 {
		t.Fatalf("%s: %d", page, code)
	}
	button := fmt.Sprintf(`#control form:has(input[name=point][value=switch_on]) button[name=value][value="%v"]`, want)
	if n := eval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll(%q).length`, button)); n != 1 {
		t.Fatalf("the device page has %d buttons %s", n, button)
	}
	// Choose the value: the page asks for the reason and repeats what will happen.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(button))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the confirmation", `document.querySelector("#control-confirm textarea[name=reason]")`, 30*time.Second)
	if text := eval[string](t, ctx, `document.getElementById("control-confirm").innerText`); !strings.Contains(text, "switch_on") {
		t.Errorf("the confirmation does not say what will happen: %q", text)
	}
	reason := "车库白天无人，关灯 <测试>"
	if want == 1 {
		reason = "车库照明不亮，开灯 <测试>"
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#control-confirm textarea[name=reason]`), reason),
		chromedp.Click(chromedp.CSS(`#control-confirm button`)),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the page following the command", `new URLSearchParams(location.search).get("command") && document.getElementById("command-progress")`, 30*time.Second)
	loc, err := url.Parse(eval[string](t, ctx, "location.href"))
	if err != nil {
		t.Fatal(err)
	}
	id := loc.Query().Get("command")
	var cmd struct {
		IssuedAt time.Time `json:"issued_at"`
	}
	if code := s.apiGet(t, "demo-pm-garden", "/api/v1/commands/"+id, &cmd); code != 200 || cmd.IssuedAt.IsZero() {
		t.Fatalf("GET the command %s: %d %+v", id, code, cmd)
	}
	// The progress block polls until the gateway's read-back: applied.
	d := waitJS(t, ctx, "the command applied on the page", `document.querySelector('#command-progress .cmd-state[data-state="applied"]')`, 60*time.Second)
	t.Logf("garage lights command %s applied on the page %s after it opened", id, d.Round(time.Millisecond))
	text := eval[string](t, ctx, `document.getElementById("command-progress").innerText`)
	for _, w := range []string{"已执行", fmt.Sprintf("执行前 %v，执行后 %v", was, want), reason} {
		if !strings.Contains(text, w) {
			t.Errorf("the progress block lacks %q: %q", w, text)
		}
	}
	if eval[bool](t, ctx, `document.getElementById("command-progress").hasAttribute("hx-trigger")`) {
		t.Error("the applied progress block still polls")
	}
	// The next reading shows the relay switched: on the page, after a reload.
	deadline = time.Now().Add(60 * time.Second)
	for {
		v, at, _ := latest()
		if v == want && !at.Before(cmd.IssuedAt) { // a reading taken after the command was issued
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("switch_on %v at %s: no reading of %v after the command", v, at, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	open(t, ctx, s.URL+page)
	shown := eval[string](t, ctx, `[...document.querySelectorAll("#values .vbox")].filter(b => b.querySelector("dt").textContent === "switch_on").map(b => b.querySelector("dd").textContent.trim()).join()`)
	if shown != fmt.Sprint(want) {
		t.Errorf("the page's switch_on reads %q after the command, want %v", shown, want)
	}
	// The device's record lists it with who and why.
	row := eval[string](t, ctx, fmt.Sprintf(`(document.querySelector('#commands tr[data-command=%q][data-state="applied"]') || {innerText: ""}).innerText`, id))
	if !strings.Contains(row, "pm-garden") || !strings.Contains(row, reason) {
		t.Errorf("the record's row for %s: %q", id, row)
	}
	s.Command = id

	// HQ sees the device and its record, and no control.
	hq := tab(t, browser)
	signIn(t, hq, s, "hq-admin")
	if code := open(t, hq, s.URL+page); code != 200 {
		t.Fatalf("HQ %s: %d", page, code)
	}
	if n := eval[int](t, hq, `document.querySelectorAll("#control, form[action$='/commands']").length`); n != 0 {
		t.Errorf("HQ sees %d control elements", n)
	}
	if n := eval[int](t, hq, fmt.Sprintf(`document.querySelectorAll('#commands tr[data-command=%q]').length`, id)); n != 1 {
		t.Errorf("HQ's record of the plug lacks the command")
	}
}
