package dev.handshaker.client;

import java.security.GeneralSecurityException;
import java.security.spec.AlgorithmParameterSpec;
import java.util.Arrays;
import java.util.List;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * The TLS 1.3 cipher suites (RFC 8446 appendix B.4) and the TLS 1.2 AEAD suites (RFC 5288 and
 * RFC 5289 for AES-GCM, RFC 7905 for ChaCha20-Poly1305), and how javax.crypto spells them. For a
 * TLS 1.2 suite the hash is the PRF's (RFC 5246 section 5).
 */
public enum CipherSuite {
  TLS_AES_128_GCM_SHA256(0x1301, 0x0304, 16, 32, false),
  TLS_AES_256_GCM_SHA384(0x1302, 0x0304, 32, 48, false),
  TLS_CHACHA20_POLY1305_SHA256(0x1303, 0x0304, 32, 32, true),
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256(0xC02B, 0x0303, 16, 32, false),
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384(0xC02C, 0x0303, 32, 48, false),
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256(0xCCA9, 0x0303, 32, 32, true),
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256(0xC02F, 0x0303, 16, 32, false),
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384(0xC030, 0x0303, 32, 48, false),
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256(0xCCA8, 0x0303, 32, 32, true),
  TLS_RSA_WITH_AES_128_GCM_SHA256(0x009C, 0x0303, 16, 32, false),
  TLS_RSA_WITH_AES_256_GCM_SHA384(0x009D, 0x0303, 32, 48, false),
  TLS_DHE_RSA_WITH_AES_128_GCM_SHA256(0x009E, 0x0303, 16, 32, false),
  TLS_DHE_RSA_WITH_AES_256_GCM_SHA384(0x009F, 0x0303, 32, 48, false),
  TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256(0xCCAA, 0x0303, 32, 32, true);

  /** Every AEAD here has a 16-byte tag and, per RFC 8446 section 5.3, a 12-byte nonce. */
  static final int TAG_LENGTH = 16;

  static final int IV_LENGTH = 12;
  /** RFC 5288 section 3: a TLS 1.2 GCM nonce is salt[4] (the fixed IV) || nonce_explicit[8]. */
  static final int GCM_SALT_LENGTH = 4;

  static final int GCM_EXPLICIT_NONCE_LENGTH = 8;

  private final int codePoint;
  private final int protocolVersion;
  private final int keyLength;
  private final String hmac;
  private final String digest;
  private final int hashLength;
  private final String transformation;
  private final String keyAlgorithm;

  /** A suite on SHA-256 or SHA-384 (by {@code hashLength}), with AES-GCM or ChaCha20-Poly1305. */
  CipherSuite(int codePoint, int protocolVersion, int keyLength, int hashLength, boolean chacha20) {
    this.codePoint = codePoint;
    this.protocolVersion = protocolVersion;
    this.keyLength = keyLength;
    this.hmac = hashLength == 48 ? "HmacSHA384" : "HmacSHA256";
    this.digest = hashLength == 48 ? "SHA-384" : "SHA-256";
    this.hashLength = hashLength;
    this.transformation = chacha20 ? "ChaCha20-Poly1305" : "AES/GCM/NoPadding";
    this.keyAlgorithm = chacha20 ? "ChaCha20" : "AES";
  }

  /** The protocol version (IANA) the suite belongs to: 0x0304 TLS 1.3, 0x0303 TLS 1.2. */
  public int protocolVersion() {
    return protocolVersion;
  }

  boolean isTls12() {
    return protocolVersion == 0x0303;
  }

  private boolean isChaCha20() {
    return keyAlgorithm.equals("ChaCha20");
  }

  /**
   * The length of the IV the service returns: 12 bytes in TLS 1.3 and for TLS 1.2
   * ChaCha20-Poly1305 (RFC 7905 section 2), GCM's 4-byte salt for TLS 1.2 AES-GCM (RFC 5288).
   */
  int ivLength() {
    return isTls12() && !isChaCha20() ? GCM_SALT_LENGTH : IV_LENGTH;
  }

  /** TLS 1.2 AES-GCM records start with an 8-byte nonce_explicit; nothing else has one. */
  int explicitNonceLength() {
    return isTls12() && !isChaCha20() ? GCM_EXPLICIT_NONCE_LENGTH : 0;
  }

  /** The IANA code point. */
  public int codePoint() {
    return codePoint;
  }

  /** The code points of {@code suites}, in order: the form the service's options take. */
  static List<Integer> codePoints(CipherSuite... suites) {
    return Arrays.stream(suites).map(CipherSuite::codePoint).toList();
  }

  /** The suite with this IANA code point. */
  public static CipherSuite fromCodePoint(int codePoint) {
    for (CipherSuite suite : values()) {
      if (suite.codePoint == codePoint) {
        return suite;
      }
    }
    throw new IllegalArgumentException(
        String.format("unsupported cipher suite 0x%04x", codePoint));
  }

  int keyLength() {
    return keyLength;
  }

  String hmacAlgorithm() {
    return hmac;
  }

  String digestAlgorithm() {
    return digest;
  }

  int hashLength() {
    return hashLength;
  }

  Cipher newCipher() throws GeneralSecurityException {
    return Cipher.getInstance(transformation);
  }

  SecretKeySpec secretKey(byte[] key) {
    return new SecretKeySpec(key, keyAlgorithm);
  }

  AlgorithmParameterSpec nonceSpec(byte[] nonce) {
    return isChaCha20()
        ? new IvParameterSpec(nonce)
        : new GCMParameterSpec(TAG_LENGTH * 8, nonce);
  }
}
