import { afterEach, describe, expect, it, vi } from 'vitest';
import { ServiceHours, type ServiceEvent } from './service-hours.js';

afterEach(() => {
  vi.useRealTimers();
});

function at(hours: number, minutes: number): Date {
  const date = new Date(2026, 5, 1, hours, minutes, 0, 0);
  vi.setSystemTime(date);
  return date;
}

describe('ServiceHours', () => {
  it('starts stopped between stop and start, then follows the daily events', () => {
    vi.useFakeTimers();
    const events: ServiceEvent[] = [];
    const hours = new ServiceHours({ start: '08:00', stop: '18:00', end: '20:00', onEvent: (event) => events.push(event) });
    hours.start(at(21, 0));
    expect(events).toEqual(['end']);
    vi.advanceTimersByTime(11 * 60 * 60 * 1000); // 08:00 next day
    expect(events).toEqual(['end', 'start']);
    vi.advanceTimersByTime(10 * 60 * 60 * 1000); // 18:00
    expect(events).toEqual(['end', 'start', 'stop']);
    vi.advanceTimersByTime(2 * 60 * 60 * 1000); // 20:00
    expect(events).toEqual(['end', 'start', 'stop', 'end']);
    hours.stopTimers();
  });

  it('serves during its hours, and without a start time serves until the first stop', () => {
    vi.useFakeTimers();
    const during: ServiceEvent[] = [];
    new ServiceHours({ start: '08:00', stop: '18:00', onEvent: (event) => during.push(event) }).start(at(12, 0));
    expect(during).toEqual(['start']);
    const untilStop: ServiceEvent[] = [];
    const hours = new ServiceHours({ stop: '13:00', onEvent: (event) => untilStop.push(event) });
    hours.start(at(12, 0));
    expect(untilStop).toEqual([]);
    vi.advanceTimersByTime(60 * 60 * 1000);
    expect(untilStop).toEqual(['stop']);
    hours.stopTimers();
  });
});
