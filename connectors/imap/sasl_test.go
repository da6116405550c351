package imap

import "testing"

// TestXOAuth2InitialResponse checks the wire form Google and Microsoft
// document: user=U ^A auth=Bearer T ^A ^A, sent as the initial response.
func TestXOAuth2InitialResponse(t *testing.T) {
	mech, ir, err := (&xoauth2{username: "broker@example.com", token: "ya29.tok"}).Start()
	if err != nil {
		t.Fatal(err)
	}
	if want := "user=broker@example.com\x01auth=Bearer ya29.tok\x01\x01"; mech != "XOAUTH2" || string(ir) != want {
		t.Errorf("Start = %q %q, want XOAUTH2 %q", mech, ir, want)
	}
	// On failure the server sends a JSON error as a challenge; the client
	// answers with an empty response so that the server ends the command.
	if resp, err := (&xoauth2{}).Next([]byte(`{"status":"401"}`)); err != nil || len(resp) != 0 {
		t.Errorf("Next = %q, %v; want an empty response", resp, err)
	}
}
