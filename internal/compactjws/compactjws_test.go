package compactjws

import (
	"encoding/base64"
	"testing"
)

func TestUnverifiedPayload(t *testing.T) {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES384"}`))
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"app"}`))
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "compact JWS", in: header + "." + payload + ".c2ln", want: `{"iss":"app"}`},
		{name: "empty signature", in: header + "." + payload + ".", want: `{"iss":"app"}`},
		{name: "two parts", in: header + "." + payload, wantErr: true},
		{name: "four parts", in: header + "." + payload + ".c2ln.c2ln", wantErr: true},
		{name: "line break in payload", in: header + "." + payload[:4] + "\n" + payload[4:] + ".c2ln", wantErr: true},
		{name: "padding", in: header + "." + payload + "==.c2ln", wantErr: true},
		{name: "payload not base64url", in: header + ".a.c2ln", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnverifiedPayload(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Errorf("UnverifiedPayload = %q, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("UnverifiedPayload = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
