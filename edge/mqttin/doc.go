// Package mqttin is the edge agent's MQTT device input.
//
// Tasmota and Shelly devices on the plant-room LAN publish JSON or plain
// text messages; mqttin receives them and maps them to protocol.Reading
// values through the device's template (config.Template.MQTT). It either
// runs the plant-room broker itself (Config.Embedded: a mochi broker that
// only lets the configured device users in; the input subscribes through
// the broker's inline client, without a network hop) or subscribes to the
// device topics on an existing site broker (Config.External: a paho client
// with a clean session, reconnecting with backoff and subscribing again
// after every reconnect).
//
//	devs, err := mqttin.GatewayDevices(gateway, templates) // "mqtt:<topic>" devices of org.yaml
//	in, err := mqttin.New(cfg, devs, mqttin.Options{Sink: sink, OnState: onState, Registerer: reg, Log: log})
//	err = in.Start(ctx)   // embedded: listening when it returns; external: connecting
//	err = in.Update(devs) // configuration reload
//	in.Stop()             // idempotent; the sink is not called afterwards
//
// # Mapping
//
// Map is the pure mapping of one message; its documentation gives the
// rules (paths, maps, scale and offset, what is skipped and what is an
// error). Readings carry the message's arrival time, not a device time:
// Tasmota's "Time" has no zone and comes from a clock that may never have
// been set, and Shelly status messages carry no measurement time.
//
// # Availability
//
// A Tasmota device's tele/<topic>/LWT (Online/Offline) and a Shelly's
// <topic>/online (true/false) are reported to Options.OnState when they
// change. Both are retained, so a device's last announcement is known as
// soon as the input subscribes. Retained telemetry, handed out on
// subscription, is of unknown age and is not turned into readings.
// Availability handled after Stop has begun is ignored: the embedded
// broker publishes the last will of every device still connected while it
// shuts down, which is the edge going away, not the devices.
//
// # Bad input
//
// A message on a topic of no configured device, a malformed payload, a
// value that is not a finite number, a payload over MaxPayload: each is
// counted (plantroom_edge_mqtt_errors_total{device,cause},
// plantroom_edge_mqtt_unknown_topic_messages_total), logged at most once a
// minute per device and cause, and the stream flows on. The fields of a
// message that did map are kept. A value outside its field's valid range is
// kept with bad quality and counted (cause out_of_range).
//
// The configuration section, device setup and metrics are described in
// README.md beside this file.
package mqttin
