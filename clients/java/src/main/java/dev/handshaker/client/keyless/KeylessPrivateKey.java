package dev.handshaker.client.keyless;

import java.math.BigInteger;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.interfaces.ECKey;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.EdECKey;
import java.security.interfaces.EdECPublicKey;
import java.security.interfaces.RSAKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.ECParameterSpec;
import java.security.spec.NamedParameterSpec;

/**
 * A private key that stays in the handshaker keystore: a handle that the {@link KeylessProvider}'s
 * Signature and Cipher implementations turn into KeyOperations calls. It has no encoding ({@link
 * #getEncoded()} is null), as with an HSM key.
 *
 * <p>JSSE picks signature schemes by the private key's algorithm and, for EC, its curve, and
 * checks RSA key sizes against schemes; so the key reports its algorithm and implements {@link
 * ECKey}, {@link RSAKey} or {@link EdECKey} with the parameters of the certificate's public key.
 * Make one with {@link #of}.
 */
public abstract class KeylessPrivateKey implements PrivateKey {
  private static final long serialVersionUID = 1L;

  // Transient: a handle to a remote key means nothing once serialised.
  private final transient KeylessClient client;
  private final transient KeylessCredential credential;
  private final transient KeyRef ref;

  private KeylessPrivateKey(KeylessClient client, KeylessCredential credential) {
    this.client = client;
    this.credential = credential;
    this.ref = KeyRef.credential(credential.name());
  }

  /** The key of {@code credential}, used through {@code client}; EC, RSA or EdDSA (Ed25519). */
  public static KeylessPrivateKey of(KeylessClient client, KeylessCredential credential) {
    PublicKey publicKey = credential.leaf().getPublicKey();
    if (publicKey instanceof ECPublicKey) {
      return new Ec(client, credential, ((ECPublicKey) publicKey).getParams());
    }
    if (publicKey instanceof RSAPublicKey) {
      return new Rsa(client, credential, ((RSAPublicKey) publicKey).getModulus());
    }
    if (publicKey instanceof EdECPublicKey) {
      return new EdDsa(client, credential, ((EdECPublicKey) publicKey).getParams());
    }
    throw new IllegalArgumentException(
        "credential " + credential.name() + ": unsupported key algorithm " + publicKey.getAlgorithm());
  }

  public KeylessCredential credential() {
    return credential;
  }

  KeylessClient client() {
    return client;
  }

  KeyRef ref() {
    return ref;
  }

  /** The certificate's public key algorithm: "EC", "RSA" or "EdDSA" (JSSE compares the two). */
  @Override
  public String getAlgorithm() {
    return credential.keyAlgorithm();
  }

  /** Null: the key has no encoding outside the keystore. */
  @Override
  public String getFormat() {
    return null;
  }

  @Override
  public byte[] getEncoded() {
    return null;
  }

  @Override
  public String toString() {
    return "KeylessPrivateKey[" + credential.name() + ", " + credential.keyType() + "]";
  }

  static final class Ec extends KeylessPrivateKey implements ECKey {
    private static final long serialVersionUID = 1L;
    private final transient ECParameterSpec params;

    Ec(KeylessClient client, KeylessCredential credential, ECParameterSpec params) {
      super(client, credential);
      this.params = params;
    }

    @Override
    public ECParameterSpec getParams() {
      return params;
    }
  }

  static final class Rsa extends KeylessPrivateKey implements RSAKey {
    private static final long serialVersionUID = 1L;
    private final BigInteger modulus;

    Rsa(KeylessClient client, KeylessCredential credential, BigInteger modulus) {
      super(client, credential);
      this.modulus = modulus;
    }

    @Override
    public BigInteger getModulus() {
      return modulus;
    }
  }

  static final class EdDsa extends KeylessPrivateKey implements EdECKey {
    private static final long serialVersionUID = 1L;
    private final transient NamedParameterSpec params;

    EdDsa(KeylessClient client, KeylessCredential credential, NamedParameterSpec params) {
      super(client, credential);
      this.params = params;
    }

    @Override
    public NamedParameterSpec getParams() {
      return params;
    }
  }
}
