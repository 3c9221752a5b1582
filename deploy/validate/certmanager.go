package main

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The cert-manager.io/v1 fields these manifests use, and only those: decoded strictly, a
// field not listed here (a typo, or one cert-manager does not have) is an error. Add a
// field here when a manifest needs it (https://cert-manager.io/docs/reference/api-docs/).

type Certificate struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            CertificateSpec   `json:"spec"`
}

type CertificateSpec struct {
	SecretName  string                 `json:"secretName"`
	CommonName  string                 `json:"commonName,omitempty"`
	Duration    *metav1.Duration       `json:"duration,omitempty"`
	RenewBefore *metav1.Duration       `json:"renewBefore,omitempty"`
	DNSNames    []string               `json:"dnsNames,omitempty"`
	URIs        []string               `json:"uris,omitempty"`
	IPAddresses []string               `json:"ipAddresses,omitempty"`
	IsCA        bool                   `json:"isCA,omitempty"`
	Usages      []string               `json:"usages,omitempty"`
	PrivateKey  *CertificatePrivateKey `json:"privateKey,omitempty"`
	IssuerRef   IssuerRef              `json:"issuerRef"`
}

type CertificatePrivateKey struct {
	Algorithm      string `json:"algorithm,omitempty"`
	Size           int    `json:"size,omitempty"`
	Encoding       string `json:"encoding,omitempty"`
	RotationPolicy string `json:"rotationPolicy,omitempty"`
}

type IssuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

type Issuer struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            IssuerSpec        `json:"spec"`
}

type IssuerSpec struct {
	SelfSigned *struct{} `json:"selfSigned,omitempty"`
	CA         *CAIssuer `json:"ca,omitempty"`
}

type CAIssuer struct {
	SecretName string `json:"secretName"`
}

// cert-manager's KeyUsage values.
var keyUsages = []string{
	"signing", "digital signature", "content commitment", "key encipherment", "key agreement",
	"data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
	"server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
	"ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
}

func (v *validator) certificate(t Typed[Certificate]) {
	spec := t.Obj.Spec
	if spec.SecretName == "" {
		v.failf(t.Doc, "no secretName")
	}
	if spec.CommonName == "" && len(spec.DNSNames)+len(spec.URIs)+len(spec.IPAddresses) == 0 {
		v.failf(t.Doc, "names nothing: give dnsNames, uris, ipAddresses or commonName")
	}
	ref := spec.IssuerRef
	if ref.Name == "" || (ref.Kind != "Issuer" && ref.Kind != "ClusterIssuer") ||
		(ref.Group != "" && ref.Group != "cert-manager.io") {
		v.failf(t.Doc, "issuerRef must name a cert-manager Issuer or ClusterIssuer, kind given")
	}
	for _, usage := range spec.Usages {
		if !slices.Contains(keyUsages, usage) {
			v.failf(t.Doc, "usage %q is not a cert-manager key usage", usage)
		}
	}
	if !spec.IsCA && len(spec.Usages) == 0 {
		v.failf(t.Doc, "say its usages (server auth, client auth)")
	}
	if spec.Duration != nil && spec.RenewBefore != nil && spec.RenewBefore.Duration >= spec.Duration.Duration {
		v.failf(t.Doc, "renewBefore is not shorter than duration")
	}
	if key := spec.PrivateKey; key != nil {
		if !slices.Contains([]string{"", "RSA", "ECDSA", "Ed25519"}, key.Algorithm) {
			v.failf(t.Doc, "privateKey.algorithm %q", key.Algorithm)
		}
		if !slices.Contains([]string{"", "PKCS1", "PKCS8"}, key.Encoding) {
			v.failf(t.Doc, "privateKey.encoding %q", key.Encoding)
		}
		if !slices.Contains([]string{"", "Never", "Always"}, key.RotationPolicy) {
			v.failf(t.Doc, "privateKey.rotationPolicy %q", key.RotationPolicy)
		}
	}
}

func (v *validator) issuer(t Typed[Issuer]) {
	spec := t.Obj.Spec
	if (spec.SelfSigned == nil) == (spec.CA == nil) {
		v.failf(t.Doc, "give exactly one of selfSigned and ca")
	}
	if spec.CA != nil && spec.CA.SecretName == "" {
		v.failf(t.Doc, "ca without a secretName")
	}
}
