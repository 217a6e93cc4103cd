/**
 * A scrolling list that renders only the rows on screen (TanStack Virtual), for host lists and
 * logs of tens of thousands of rows. Rows have one fixed height.
 */
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useRef } from 'react';
import type { ReactNode } from 'react';

export function VirtualRows({
  count,
  rowHeight,
  height,
  row,
  label,
  className,
  onRange,
}: {
  count: number;
  rowHeight: number;
  /** CSS height of the scrolling box. */
  height: string;
  row: (index: number) => ReactNode;
  label: string;
  className?: string;
  /** Told the rows on screen (with overscan) whenever they change, to read them on demand. */
  onRange?: (start: number, end: number) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({
    count,
    getScrollElement: () => box.current,
    estimateSize: () => rowHeight,
    overscan: 12,
  });
  const items = v.getVirtualItems();
  const start = items[0]?.index ?? 0;
  const end = items[items.length - 1]?.index ?? -1;
  useEffect(() => {
    if (onRange && end >= start) onRange(start, end);
  }, [onRange, start, end]);
  return (
    <div
      ref={box}
      className={`virtual-rows ${className ?? ''}`}
      style={{ height, overflow: 'auto' }}
      role="list"
      aria-label={label}
      tabIndex={0}
    >
      <div style={{ height: v.getTotalSize(), position: 'relative' }}>
        {items.map((item) => (
          <div
            key={item.key}
            role="listitem"
            style={{
              position: 'absolute',
              top: 0,
              left: 0,
              right: 0,
              height: rowHeight,
              transform: `translateY(${item.start}px)`,
            }}
          >
            {row(item.index)}
          </div>
        ))}
      </div>
    </div>
  );
}
