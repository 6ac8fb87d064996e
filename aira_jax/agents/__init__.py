"""The search harness shared by compose and design: journal of nodes, search policies, prompt memory and
templates, reply parsing, the built-in heuristic layout agent, the shared evaluation queue and the ensemble.

Policies decide which node to work on next; operators decide what one step writes (the LLM operators belong to
the compose and design pipelines; `HeuristicOperator` needs no LLM).
"""

from aira_jax.agents.action import Action
from aira_jax.agents.ensemble import AgentSpec, Budgets, EnsembleReport, Proposal, print_progress, run_ensemble
from aira_jax.agents.evaluation import EvalResult, EvaluationQueue
from aira_jax.agents.heuristic import HeuristicOperator
from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.memory import debug_chain, summarize_good_nodes
from aira_jax.agents.policies import (POLICIES, EvolutionaryPolicy, GreedyPolicy, MCTSPolicy, OneShotPolicy,
                                      make_policy)

__all__ = [
    "AgentSpec", "Budgets", "EnsembleReport", "EvalResult", "EvaluationQueue", "HeuristicOperator", "Proposal",
    "print_progress", "run_ensemble",
    "Action", "EvolutionaryPolicy", "GreedyPolicy", "Journal", "MCTSPolicy", "Node", "OneShotPolicy",
    "POLICIES", "debug_chain", "make_policy", "summarize_good_nodes",
]
