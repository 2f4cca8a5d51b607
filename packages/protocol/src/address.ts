/** A remote device: the account's name (an opaque service id) and a device id. */
export interface ProtocolAddress {
  readonly name: string;
  readonly deviceId: number;
}

/** `name.deviceId`, the key stores use and errors show. */
export function addressKey(address: ProtocolAddress): string {
  return `${address.name}.${address.deviceId}`;
}
