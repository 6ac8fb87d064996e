"""The search harness shared by compose and design: journal of nodes, search policies, prompt memory and
templates, reply parsing, the shared evaluation queue, the ensemble and the on-disk session.

Policies decide which node to work on next; operators decide what one step writes. Operators belong to the
pipelines (compose: layouts, e.g. `aira_jax.compose.heuristic.HeuristicOperator`; design: code), so nothing
here knows what a payload is.
"""

from aira_jax.agents.action import Action
from aira_jax.agents.ensemble import AgentSpec, Budgets, EnsembleReport, Proposal, print_progress, run_ensemble
from aira_jax.agents.evaluation import EvalResult, EvaluationQueue
from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.memory import debug_chain, summarize_good_nodes
from aira_jax.agents.policies import (POLICIES, EvolutionaryPolicy, GreedyPolicy, MCTSPolicy, OneShotPolicy,
                                      make_policy)

__all__ = [
    "AgentSpec", "Budgets", "EnsembleReport", "EvalResult", "EvaluationQueue", "Proposal",
    "print_progress", "run_ensemble",
    "Action", "EvolutionaryPolicy", "GreedyPolicy", "Journal", "MCTSPolicy", "Node", "OneShotPolicy",
    "POLICIES", "debug_chain", "make_policy", "summarize_good_nodes",
]
