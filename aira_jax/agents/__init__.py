"""The search harness shared by compose and design: journal of nodes, search policies, prompt memory.

Policies decide which node to work on next; operators (elsewhere) decide what one step does.
"""

from aira_jax.agents.action import Action
from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.memory import debug_chain, summarize_good_nodes
from aira_jax.agents.policies import (POLICIES, EvolutionaryPolicy, GreedyPolicy, MCTSPolicy, OneShotPolicy,
                                      make_policy)

__all__ = [
    "Action", "EvolutionaryPolicy", "GreedyPolicy", "Journal", "MCTSPolicy", "Node", "OneShotPolicy",
    "POLICIES", "debug_chain", "make_policy", "summarize_good_nodes",
]
