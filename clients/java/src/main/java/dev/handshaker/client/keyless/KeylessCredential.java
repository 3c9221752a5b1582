package dev.handshaker.client.keyless;

import java.security.cert.X509Certificate;
import java.util.List;

/**
 * The public half of a keystore credential, as GetCredential describes it: never key bytes.
 *
 * @param name the keystore name
 * @param chain the certificate chain, leaf first
 * @param keyType the key type as `handshaker keys list` spells it (ecdsa-p256, rsa-2048, ed25519)
 * @param signatureSchemes the TLS signature schemes the key signs with, most preferred first
 * @param decrypts whether the key may decrypt (TLS 1.2 RSA key exchange)
 * @param subjectKeyId the leaf's subjectKeyIdentifier, another name for the key
 */
public record KeylessCredential(
    String name,
    X509Certificate[] chain,
    String keyType,
    List<Integer> signatureSchemes,
    boolean decrypts,
    byte[] subjectKeyId) {

  public KeylessCredential {
    if (chain.length == 0) {
      throw new IllegalArgumentException("credential " + name + " has no certificate");
    }
    chain = chain.clone();
    signatureSchemes = List.copyOf(signatureSchemes);
    subjectKeyId = subjectKeyId.clone();
  }

  /** A copy of the chain: arrays are mutable and JSSE is handed its own. */
  @Override
  public X509Certificate[] chain() {
    return chain.clone();
  }

  @Override
  public byte[] subjectKeyId() {
    return subjectKeyId.clone();
  }

  public X509Certificate leaf() {
    return chain[0];
  }

  /**
   * The JCA key algorithm, as the leaf's public key names it ("EC", "RSA", "EdDSA"): JSSE picks a
   * credential for a key type only when its private and public keys both name that algorithm.
   */
  public String keyAlgorithm() {
    return chain[0].getPublicKey().getAlgorithm();
  }

  @Override
  public String toString() {
    return "KeylessCredential[" + name + ", " + keyType + ", " + chain[0].getSubjectX500Principal() + "]";
  }
}
