package mqttin

import (
	"sort"
	"strings"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// AddressPrefix starts the org.yaml address of an MQTT device: "mqtt:<topic>".
const AddressPrefix = "mqtt:"

// Device is one MQTT device: its id, its template and its topic (the
// Tasmota topic or Shelly device id that "{topic}" stands for).
type Device struct {
	ID       string
	Template *config.Template
	Topic    string
}

// ValidateDevices checks devices as the list at path ("devices[1].topic: …"):
// ids, templates, topics, and that no two devices claim the same topic.
func ValidateDevices(p *config.Problems, path string, devs []Device) {
	ids := map[string]bool{}
	owner := map[string]string{} // concrete topic → device id
	for i, d := range devs {
		dp := config.Join(path, i)
		if err := protocol.CheckID(d.ID); err != nil {
			p.Add(config.Join(dp, "id"), err)
		} else if ids[d.ID] {
			p.Addf(config.Join(dp, "id"), "duplicate device id %q", d.ID)
		}
		ids[d.ID] = true
		t := d.Template
		switch {
		case t == nil:
			p.Addf(config.Join(dp, "template"), "required")
			continue
		case t.Protocol != config.ProtoMQTT || t.MQTT == nil || len(t.MQTT.Fields) == 0:
			p.Addf(config.Join(dp, "template"), "template %q is not an MQTT template", t.ID)
			continue
		}
		if msg := topicProblem(d.Topic); msg != "" {
			p.Addf(config.Join(dp, "topic"), "%s, got %q", msg, d.Topic)
			continue
		}
		for _, topic := range deviceTopics(&d) {
			if other, ok := owner[topic]; ok && other != d.ID {
				p.Addf(config.Join(dp, "topic"), "topic %q is also device %q's", topic, other)
				break
			}
			owner[topic] = d.ID
		}
	}
}

// topicProblem explains what is wrong with a device topic, or returns "".
func topicProblem(t string) string {
	switch {
	case t == "":
		return "required"
	case len(t) > 128:
		return "must be at most 128 characters"
	case strings.ContainsAny(t, "+#\x00"):
		return "must not contain wildcards (+ #)"
	case strings.HasPrefix(t, "$"):
		return "must not start with $"
	case strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") || strings.Contains(t, "//"):
		return "must not have empty topic levels"
	}
	return ""
}

// deviceTopics lists the concrete topics of a device: its fields' topics
// and its availability topic, without repeats.
func deviceTopics(d *Device) []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for i := range d.Template.MQTT.Fields {
		add(FieldTopic(&d.Template.MQTT.Fields[i], d.Topic))
	}
	add(AvailabilityTopic(d.Template, d.Topic))
	return out
}

// GatewayDevices returns the MQTT devices of a gateway from the
// organisation: those whose template's protocol is mqtt, with the topic
// from their address ("mqtt:garden_garage"). Problems are reported with
// paths under "devices".
func GatewayDevices(g *config.Gateway, ts config.Templates) ([]Device, error) {
	var p config.Problems
	var out []Device
	for i, d := range g.Devices {
		dp := config.Join("devices", i)
		t := ts[d.Template]
		if t == nil {
			if strings.HasPrefix(d.Address, AddressPrefix) {
				p.Addf(config.Join(dp, "template"), "unknown template %q", d.Template)
			}
			continue
		}
		if t.Protocol != config.ProtoMQTT {
			continue
		}
		if !strings.HasPrefix(d.Address, AddressPrefix) {
			p.Addf(config.Join(dp, "address"), "an MQTT device's address is \"mqtt:<topic>\", got %q", d.Address)
			continue
		}
		out = append(out, Device{ID: d.ID, Template: t, Topic: strings.TrimPrefix(d.Address, AddressPrefix)})
	}
	if p.Len() == 0 {
		ValidateDevices(&p, "devices", out)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// route is what a concrete topic means: a message of dev's fields, or its
// availability.
type route struct {
	dev          *Device
	availability bool
}

// routes maps concrete topics to devices.
type routes struct {
	byTopic map[string]route
	devices map[string]*Device
}

func newRoutes(devs []Device) *routes {
	r := &routes{byTopic: map[string]route{}, devices: map[string]*Device{}}
	for i := range devs {
		d := &devs[i]
		r.devices[d.ID] = d
		avail := AvailabilityTopic(d.Template, d.Topic)
		for _, t := range deviceTopics(d) {
			r.byTopic[t] = route{dev: d, availability: t == avail}
		}
	}
	return r
}

// topics lists every concrete topic, sorted.
func (r *routes) topics() []string {
	out := make([]string, 0, len(r.byTopic))
	for t := range r.byTopic {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
