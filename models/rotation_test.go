package models

import (
	"slices"
	"testing"
	"time"
)

// Which secret signs which header at each point of a rotation, decided by the clock alone.
func TestSecretsAtFollowsTheRotationByTime(t *testing.T) {
	t0 := time.Date(2025, 1, 15, 9, 0, 0, 0, time.UTC)
	from := t0.Add(time.Hour)
	scheduled := Webhook{Secret: "old", NextSecret: "new", NextSecretSince: &t0, NextSecretFrom: &from}
	manual := Webhook{Secret: "old", NextSecret: "new", NextSecretSince: &t0}
	for _, c := range []struct {
		name     string
		w        Webhook
		at       time.Time
		hex      string
		standard []string
	}{
		{"no secret", Webhook{}, t0, "", nil},
		{"no rotation", Webhook{Secret: "old"}, t0, "old", []string{"old"}},
		{"pending until activated", manual, t0.Add(1000 * time.Hour), "old", []string{"old", "new"}},
		{"scheduled, before its time", scheduled, from.Add(-time.Nanosecond), "old", []string{"old", "new"}},
		{"scheduled, at its time", scheduled, from, "new", []string{"new", "old"}},
		{"scheduled, 24 h later the old one is gone", scheduled, from.Add(PrevSecretOverlap), "new", []string{"new"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := c.w
			hex, standard := c.w.SecretsAt(c.at)
			if hex != c.hex || !slices.Equal(standard, c.standard) {
				t.Errorf("SecretsAt = %q %q, want %q %q", hex, standard, c.hex, c.standard)
			}
			if c.w.Secret != before.Secret || c.w.NextSecret != before.NextSecret {
				t.Error("SecretsAt changed the webhook")
			}
		})
	}

	// Folded in late, the activation keeps its own time: the old secret's 24 h count from it.
	w := scheduled
	if w.ApplyDueRotation(from.Add(-time.Second)) {
		t.Fatal("applied before its time")
	}
	if !w.ApplyDueRotation(from.Add(5*time.Hour)) || w.Secret != "new" || w.PrevSecret != "old" || w.NextSecret != "" ||
		!w.PrevSecretUntil.Equal(from.Add(PrevSecretOverlap)) {
		t.Fatalf("after applying: %+v", w)
	}
}
