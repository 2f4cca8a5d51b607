/** A QR code drawn as one SVG path: no canvas, no data URL, nothing the Content-Security-Policy must allow. */
import QRCode from 'qrcode';
import { useMemo } from 'react';

export function Qr({ value, label }: { readonly value: string | Uint8Array; readonly label: string }) {
  const { size, path } = useMemo(() => {
    const { modules } = QRCode.create(typeof value === 'string' ? value : [{ mode: 'byte', data: value }], { errorCorrectionLevel: 'M' });
    let d = '';
    for (let row = 0; row < modules.size; row++) {
      for (let col = 0; col < modules.size; col++) if (modules.get(row, col) === 1) d += `M${col} ${row}h1v1h-1z`;
    }
    return { size: modules.size, path: d };
  }, [value]);
  return (
    <svg className="qr" role="img" aria-label={label} viewBox={`-4 -4 ${size + 8} ${size + 8}`} shapeRendering="crispEdges">
      <rect x={-4} y={-4} width={size + 8} height={size + 8} fill="#fff" />
      <path d={path} fill="#000" />
    </svg>
  );
}
