import { useCallback, useEffect, useState } from 'react';
import { api } from '../../api/client';

export interface StepSummary {
  step_instance_id: number;
  name: string;
  status: number;
  type: number;
  execute_count: number;
  create_time: number | null;
  start_time: number | null;
  end_time: number | null;
  total_time: number | null;
}

export interface JobSummary {
  finished: boolean;
  job_instance: {
    job_instance_id: number;
    name: string;
    status: number;
    create_time: number | null;
    start_time: number | null;
    end_time: number | null;
    total_time: number | null;
  };
  step_instance_list: StepSummary[];
}

/** A job and its steps (get_job_instance_status); `reload` re-reads it. */
export function useJobSummary(scopeParams: { bk_scope_type: string; bk_scope_id: string }, jobId: number) {
  const [job, setJob] = useState<JobSummary>();
  const [error, setError] = useState<unknown>();
  const { bk_scope_type, bk_scope_id } = scopeParams;
  const reload = useCallback(() => {
    api
      .read<JobSummary>('get_job_instance_status', { bk_scope_type, bk_scope_id, job_instance_id: jobId })
      .then((j) => {
        setJob(j);
        setError(undefined);
      }, setError);
  }, [bk_scope_type, bk_scope_id, jobId]);
  useEffect(reload, [reload]);
  return { job, error, reload };
}
